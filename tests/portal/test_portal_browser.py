"""The pages in a real browser (Debian's headless Chromium): the whole flow by clicks, with screenshots.

Screenshots of the register, status and login pages land in test-output/portal/
for review. The status page must turn "ready" by itself (its script polls the
JSON endpoint), and no page may log a browser error (e.g. a blocked script).
A browser asking for Portuguese (Brazil) goes through registration, its errors
and the verification mail in Portuguese; its screenshots land in the test's
temporary directory (printed by `pytest -s`) and in test-output/portal/pt-BR/.
"""

from __future__ import annotations

import shutil
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


def start_chromium(*, language: str = "en-US,en") -> tuple[webdriver.Chrome, tempfile.TemporaryDirectory]:
    """Headless Chromium with its own profile, asking for pages in `language` (its Accept-Language)."""
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
        f"--lang={language.split(',')[0]}",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    except Exception as exc:  # noqa: BLE001 - say why the browser did not start
        profile.cleanup()
        pytest.fail(f"headless Chromium did not start: {exc}", pytrace=False)
    return driver, profile


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver, profile = start_chromium()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    profile.cleanup()


@pytest.fixture(scope="module")
def brazilian_browser() -> Iterator[webdriver.Chrome]:
    """A browser set to Portuguese (Brazil) first, as a student's in Brazil would be."""
    driver, profile = start_chromium(language="pt-BR,pt,en")
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
    assert "Use at least 14 characters." in browser.find_element(By.ID, "id_new_password1_error").text
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


def test_a_brazilian_browser_registers_in_portuguese(brazilian_browser, live_portal, mail_catcher, username, tmp_path):
    browser, wait = brazilian_browser, WebDriverWait(brazilian_browser, 60)
    shots = []

    def screenshot(name: str) -> None:
        path = tmp_path / f"{name}.png"
        browser.save_screenshot(str(path))
        shots.append(path)

    email = f"{username}@{ALLOWED_DOMAIN}"
    browser.get(f"{live_portal.url}/register/")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "pt-br"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Crie sua conta"
    help_text = browser.find_element(By.ID, "id_new_password1_helptext").text
    assert help_text.startswith("Pelo menos 14 caracteres")
    screenshot("01-cadastro")

    fill(browser, username=username, email=f"{username}@evil.example", first_name="Ada", last_name="Lovelace",
         new_password1="senha-curta", new_password2="senha-curta")  # fmt: skip
    submit(browser)
    assert "O cadastro é aberto apenas a endereços de" in browser.find_element(By.ID, "id_email_error").text
    assert browser.find_element(By.ID, "id_new_password1_error").text == "Use pelo menos 14 caracteres."
    screenshot("02-cadastro-erros")
    browser.execute_script("document.getElementById('id_new_password1').scrollIntoView({block: 'center'});")
    screenshot("02b-cadastro-erro-senha")

    fill(browser, email=email, new_password1=GOOD_PASSWORD, new_password2=GOOD_PASSWORD)
    submit(browser)
    wait.until(expected_conditions.url_contains("/status/"))
    assert browser.find_element(By.ID, "status-message").text.startswith("Confirme seu endereço de e-mail")
    # Nothing but "confirm your address" until it is: no username, no steps.
    assert browser.find_element(By.TAG_NAME, "h1").text == "Confirme seu endereço de e-mail"
    assert not browser.find_elements(By.CSS_SELECTOR, ".task .task-label")
    screenshot("03-situacao")

    mail = mail_catcher.wait_for(email)
    assert mail.subject == "Acme Corp: confirme seu endereço de e-mail"
    assert "alguém cadastrou uma conta em ES4PS.TEST com este endereço." in mail.text
    assert username not in mail.text and "Ada" not in mail.html
    # The mail as a mail program shows it (its HTML part).
    shown_mail = tmp_path / "mail.html"
    shown_mail.write_text(mail.html)
    browser.get(shown_mail.as_uri())
    assert browser.find_element(By.LINK_TEXT, "Confirmar meu endereço de e-mail")
    screenshot("04-mensagem-de-verificacao")

    browser.get(mail.link("/verify/"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Confirme seu endereço de e-mail"
    screenshot("05-confirmar")
    submit(browser)
    wait.until(lambda b: b.find_element(By.ID, "account-status").get_attribute("data-state") == "ready")
    assert (
        browser.find_element(By.ID, "status-message").text
        == f"Sua conta está pronta. Entre como {username}@ES4PS.TEST."
    )
    screenshot("06-pronta")

    # The switcher: Spanish from now on, whatever the browser asks for.
    browser.find_element(By.CSS_SELECTOR, "footer button[value=es]").click()
    # Read in one script: an element found before the new page replaced the old one goes stale.
    wait.until(lambda b: b.execute_script("return document.documentElement.lang;") == "es")
    assert browser.find_element(By.CSS_SELECTOR, "footer button[aria-current]").text == "Español"
    screenshot("07-espanol")
    assert errors_logged(browser) == []

    kept = SCREENSHOTS / "pt-BR"
    kept.mkdir(parents=True, exist_ok=True)
    for shot in shots:
        shutil.copy(shot, kept / shot.name)
    print(f"screenshots: {tmp_path}")
