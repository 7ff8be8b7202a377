from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("register/", views.register, name="register"),
    path("verify/code/", views.verify_code, name="verify-code"),
    path("verify/resend/", views.resend, name="resend"),
    path("verify/", views.verify_link, name="verify-link"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    path("account/password/", views.password_change, name="password-change"),
    path("password/reset/", views.password_reset, name="password-reset"),
    path("password/reset/confirm/", views.password_reset_confirm, name="reset-confirm"),
    path("password/expired/", views.password_expired, name="password-expired"),
    path("language/", views.set_language, name="set-language"),
]
