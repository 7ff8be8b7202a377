"""The pages in a real browser (Debian's headless Chromium): the whole flow by clicks, with screenshots.

Screenshots of the register, status and login pages land in test-output/portal/
for review. The status page must turn "ready" by itself (its script polls the
JSON endpoint), and no page may log a browser error (e.g. a blocked script).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "portal"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    profile = tempfile.TemporaryDirectory(prefix="es4ps-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless",
        "--no-sandbox",  # we run as root
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile.name}",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    except Exception as exc:  # noqa: BLE001 - say why the browser did not start
        profile.cleanup()
        pytest.fail(f"headless Chromium did not start: {exc}", pytrace=False)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    profile.cleanup()


def fill(browser: webdriver.Chrome, **fields: str) -> None:
    for name, value in fields.items():
        element = browser.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)


def submit(browser: webdriver.Chrome) -> None:
    """Press the form's button and wait until the next page has loaded in place of this one."""
    browser.execute_script("window.es4psPreviousPage = true;")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return !window.es4psPreviousPage && document.readyState === 'complete';")
    )


def errors_logged(browser: webdriver.Chrome) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_register_confirm_and_sign_in_by_clicks(browser, live_portal, mail_catcher, username):
    wait = WebDriverWait(browser, 60)
    email = f"{username}@{ALLOWED_DOMAIN}"

    browser.set_window_size(390, 844)  # a phone
    browser.get(f"{live_portal.url}/register/")
    assert browser.find_element(By.CSS_SELECTOR, ".brand-name").text == "Acme Corp"
    assert browser.find_element(By.CSS_SELECTOR, ".brand-realm").text == "ES4PS.TEST"
    browser.save_screenshot(str(SCREENSHOTS / "register-phone.png"))
    browser.set_window_size(1280, 1000)

    fill(browser, username=username, email=f"{username}@evil.example", first_name="Ada", last_name="Lovelace",
         new_password1="password", new_password2="password")  # fmt: skip
    submit(browser)
    email_field = browser.find_element(By.NAME, "email")
    assert email_field.get_attribute("aria-invalid") == "true"
    error_id = email_field.get_attribute("aria-describedby").split()[-1]
    assert "Registration is open to addresses of" in browser.find_element(By.ID, error_id).text
    assert "three of these groups" in browser.find_element(By.ID, "id_new_password1_error").text
    browser.save_screenshot(str(SCREENSHOTS / "register-errors.png"))

    fill(browser, email=email, new_password1=GOOD_PASSWORD, new_password2=GOOD_PASSWORD)
    submit(browser)
    wait.until(expected_conditions.url_contains("/status/"))
    assert "Confirm your e-mail address" in browser.find_element(By.ID, "status-message").text
    browser.save_screenshot(str(SCREENSHOTS / "status-waiting.png"))

    browser.get(mail_catcher.wait_for(email).link("/verify/"))
    submit(browser)
    assert browser.current_url.endswith("/status/")
    # No reload from here on: the page's own script brings the news.
    wait.until(lambda b: b.find_element(By.ID, "account-status").get_attribute("data-state") == "ready")
    assert "Your account is ready" in browser.find_element(By.ID, "status-message").text
    browser.save_screenshot(str(SCREENSHOTS / "status-ready.png"))

    browser.find_element(By.ID, "sign-in-link").click()
    wait.until(expected_conditions.url_contains("/login/"))
    fill(browser, username=username, password=GOOD_PASSWORD)
    browser.save_screenshot(str(SCREENSHOTS / "login.png"))
    submit(browser)
    wait.until(expected_conditions.url_contains("/account/"))
    assert "Hello Ada" in browser.find_element(By.TAG_NAME, "h1").text
    browser.save_screenshot(str(SCREENSHOTS / "account.png"))
    assert errors_logged(browser) == []
