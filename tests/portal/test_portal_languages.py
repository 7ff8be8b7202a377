"""The portal in Portuguese (Brazil) and Spanish: the browser's language, else the domain's default; the switcher;
errors, the contract's rules and the mails in the person's language."""

from __future__ import annotations

import pytest
from django.test import Client
from es4ps_portal.accounts.models import User
from es4ps_testkit.in_process import consumer_round
from es4ps_testkit.mail import MailCatcher
from es4ps_testkit.registration import ALLOWED_DOMAIN, form

pytestmark = pytest.mark.django_db

PORTUGUESE = {"HTTP_ACCEPT_LANGUAGE": "pt-BR,pt;q=0.9,en;q=0.5"}


def test_pages_follow_the_browsers_language(client: Client):
    page = client.get("/register/", **PORTUGUESE).content.decode()
    assert '<html lang="pt-br">' in page
    assert "<h1>Crie sua conta</h1>" in page
    assert "Pelo menos 14 caracteres: algumas palavras de que você se lembre formam uma boa senha." in page
    assert "Um endereço de acme.example" in page
    spanish = client.get("/login/", HTTP_ACCEPT_LANGUAGE="es-419,es;q=0.9").content.decode()
    assert "<h1>Iniciar sesión</h1>" in spanish


def test_a_language_the_portal_lacks_falls_back_to_the_domains_default(client: Client, settings):
    assert "<h1>Create your account</h1>" in client.get("/register/", HTTP_ACCEPT_LANGUAGE="fr-FR,fr").content.decode()
    settings.LANGUAGE_CODE = "es"  # spec.portal.defaultLanguage: es
    assert "<h1>Crea tu cuenta</h1>" in client.get("/register/", HTTP_ACCEPT_LANGUAGE="fr-FR,fr").content.decode()
    assert "<h1>Crea tu cuenta</h1>" in client.get("/register/").content.decode()


def test_errors_and_the_contracts_rules_are_translated(client: Client, username):
    data = form("-bad", email=f"{username}@evil.example", password="curta")  # noqa: S106 - a test password
    page = client.post("/register/", data, **PORTUGUESE).content.decode()
    assert "O cadastro é aberto apenas a endereços de acme.example, bücher.example." in page
    assert "Use pelo menos 14 caracteres." in page
    assert "Pode conter apenas as letras a-z, dígitos, &#x27;.&#x27;, &#x27;-&#x27; e &#x27;_&#x27;, e deve" in page
    assert not User.objects.exists()


def test_the_switcher_sets_the_language_and_keeps_the_page(client: Client, settings):
    page = client.get("/register/", **PORTUGUESE).content.decode()
    assert 'name="language" value="es"' in page and "Español" in page
    switched = client.post("/language/", {"language": "es", "next": "/register/"}, **PORTUGUESE)
    assert (switched.status_code, switched["Location"]) == (302, "/register/")
    cookie = switched.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert settings.LANGUAGE_COOKIE_NAME == "__Host-language"  # https: bound to this host, never sent in clear
    assert (cookie.value, cookie["secure"], cookie["httponly"], cookie["samesite"]) == ("es", True, True, "Lax")
    # The choice wins over the browser's languages from now on.
    assert "<h1>Crea tu cuenta</h1>" in client.get("/register/", **PORTUGUESE).content.decode()


def test_a_registration_in_portuguese_gets_its_mail_and_status_in_portuguese(
    client: Client, broker, smtp: MailCatcher, username
):
    response = client.post("/register/", form(username), **PORTUGUESE)
    consumer_round()
    assert response.status_code == 302
    assert User.objects.get(username=username).language == "pt-br"
    mail = smtp.wait_for(f"{username}@{ALLOWED_DOMAIN}")
    assert mail.subject == "Acme Corp: confirme seu endereço de e-mail"
    assert "alguém cadastrou uma conta em ES4PS.TEST com este endereço." in mail.text
    assert "ou digite este código na página de situação:" in mail.text
    assert "O link e o código funcionam uma única vez e expiram em 24 horas." in mail.text
    assert '<html lang="pt-br">' in mail.html
    status = client.get("/status.json", **PORTUGUESE).json()
    assert status["message"].startswith("Confirme seu endereço de e-mail")
    code = mail.text.split("ou digite este código na página de situação: ", 1)[1][:6]
    client.post("/verify/code/", {"code": code}, **PORTUGUESE)
    status = client.get("/status.json", **PORTUGUESE).json()
    assert (status["tasks"][0]["label"], status["tasks"][0]["state_label"]) == ("criar a conta", "na fila")


def test_the_switch_is_remembered_for_the_mails_of_the_account_followed(client: Client, broker, smtp, username):
    client.post("/register/", form(username))
    consumer_round()
    assert User.objects.get(username=username).language == "en"
    client.post("/language/", {"language": "es", "next": "/status/"})
    assert User.objects.get(username=username).language == "es"
