"""The portal's pages (namespace `web`); the admin is mounted by es4ps_portal.urls."""

from django.contrib.auth import views as auth_views
from django.urls import path

from .views import pages, passwords, registration

app_name = "web"

urlpatterns = [
    path("", pages.home, name="home"),
    path("register/", registration.register, name="register"),
    path("verify/code/", registration.verify_code, name="verify-code"),
    path("verify/resend/", registration.resend, name="resend"),
    path("verify/", registration.verify_link, name="verify-link"),
    path("register/withdraw/", registration.withdraw, name="withdraw"),
    path("status/", pages.status, name="status"),
    path("status.json", pages.status_json, name="status-json"),
    path("login/", passwords.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", pages.account, name="account"),
    path("account/computers/", pages.prestage_computer, name="prestage-computer"),
    path("account/password/", passwords.password_change, name="password-change"),
    path("password/reset/", passwords.password_reset, name="password-reset"),
    path("password/reset/confirm/", passwords.password_reset_confirm, name="reset-confirm"),
    path("password/expired/", passwords.password_expired, name="password-expired"),
    path("language/", pages.set_language, name="set-language"),
]
