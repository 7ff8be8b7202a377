"""Django settings of the portal, all from the environment (see docs/interfaces.md).

Required: ES4PS_PORTAL_HOST, DJANGO_SECRET_KEY_FILE, ES4PS_REALM and
ES4PS_ALLOWED_EMAIL_DOMAINS. The broker, key and LDAP settings are checked
when first used, so `migrate` and `collectstatic` run without them.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from es4ps_portal.accounts.email_domains import InvalidDomain, parse_allowed_domains
from es4ps_portal.environment import integer, required, secret_from_file

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("ES4PS_DATA_DIR", "/var/lib/es4ps-portal"))

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
SECRET_KEY = secret_from_file("DJANGO_SECRET_KEY_FILE")

# --- where the portal is reached -------------------------------------------------
PORTAL_HOST = required("ES4PS_PORTAL_HOST").lower()
PORTAL_SCHEME = os.environ.get("ES4PS_PORTAL_SCHEME", "https")
if PORTAL_SCHEME not in ("https", "http"):
    raise ImproperlyConfigured("ES4PS_PORTAL_SCHEME must be https or http")
# Links in mails are built from this, never from the request's Host header.
PORTAL_BASE_URL = f"{PORTAL_SCHEME}://{PORTAL_HOST}"
ALLOWED_HOSTS = [urlsplit(PORTAL_BASE_URL).hostname]
CSRF_TRUSTED_ORIGINS = [PORTAL_BASE_URL]
# The Ingress terminates TLS and says so in X-Forwarded-Proto; it also appends the
# client's address to X-Forwarded-For. How many proxies append to it decides
# which entry is the client (for rate limits); 0 means "use the peer address".
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
TRUSTED_PROXY_COUNT = integer("ES4PS_TRUSTED_PROXY_COUNT", 1)

# --- the organisation ---------------------------------------------------------------
ORGANIZATION_NAME = os.environ.get("ES4PS_ORGANIZATION_NAME", "").strip() or "ES4PS"
REALM = required("ES4PS_REALM").upper()
try:
    ALLOWED_EMAIL_DOMAINS = parse_allowed_domains(required("ES4PS_ALLOWED_EMAIL_DOMAINS"))
except InvalidDomain as exc:
    raise ImproperlyConfigured(f"ES4PS_ALLOWED_EMAIL_DOMAINS: {exc}") from None

# --- security -------------------------------------------------------------------------
SECURE = PORTAL_SCHEME == "https"
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
# __Host- cookies are bound to this exact host and path, never to a parent domain.
SESSION_COOKIE_NAME = "__Host-session" if SECURE else "session"
CSRF_COOKIE_NAME = "__Host-csrf" if SECURE else "csrf"
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 8 * 3600
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if SECURE else 0
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# No SECURE_SSL_REDIRECT: the Ingress redirects, and the kubelet probes speak plain HTTP.
SILENCED_SYSTEM_CHECKS = ["security.W008"]
CSRF_FAILURE_VIEW = "es4ps_portal.accounts.views.csrf_failure"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

# --- application ---------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "es4ps_portal.accounts",
]

MIDDLEWARE = [
    # First: probes reach the pod by IP, which ALLOWED_HOSTS would refuse.
    "es4ps_portal.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "es4ps_portal.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "es4ps_portal.urls"
WSGI_APPLICATION = "es4ps_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "es4ps_portal.accounts.context_processors.organization",
            ],
        },
    },
]

# --- users and login ----------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # Staff sign in to the admin with a local password ...
    "es4ps_portal.accounts.backends.StaffBackend",
    # ... everybody else with their directory password (an LDAP bind to the DC).
    "es4ps_portal.accounts.backends.DirectoryBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:account"
LOGOUT_REDIRECT_URL = "accounts:login"
LDAP_URL = os.environ.get("ES4PS_LDAP_URL", "")
LDAP_CA_FILE = os.environ.get("ES4PS_LDAP_CA_FILE", "")
LDAP_TIMEOUT_S = 10
# The broker connection (ES4PS_BROKER_*), turned into Celery settings by the task contract.
BROKER_ENVIRON = {name: value for name, value in os.environ.items() if name.startswith("ES4PS_BROKER_")}
# Key files of the task contract: the portal seals passwords and signs tasks.
SEALING_PUBLIC_KEY_FILE = os.environ.get("ES4PS_SEALING_PUBLIC_KEY_FILE", "")
SIGNING_PRIVATE_KEY_FILE = os.environ.get("ES4PS_SIGNING_PRIVATE_KEY_FILE", "")

# --- tokens, mails and rate limits ------------------------------------------------------
TOKEN_TTL_HOURS = integer("ES4PS_TOKEN_TTL_HOURS", 24, minimum=1)
# A registration whose address is not verified this long after its last mail is deleted, with its
# disabled directory account, so a mistyped or someone else's address does not hold the name and
# the address for ever. 0 keeps them.
UNVERIFIED_RETENTION_HOURS = integer("ES4PS_UNVERIFIED_RETENTION_HOURS", 7 * 24, minimum=0)
if 0 < UNVERIFIED_RETENTION_HOURS < TOKEN_TTL_HOURS:
    raise ImproperlyConfigured(
        "ES4PS_UNVERIFIED_RETENTION_HOURS must be 0 (keep) or at least ES4PS_TOKEN_TTL_HOURS: "
        "a registration must outlive its verification mail"
    )
RESEND_COOLDOWN_S = 60
CODE_MAX_ATTEMPTS = 5
# action -> {"ip" | "account": (attempts, window in seconds)}
RATE_LIMITS = {
    "register": {"ip": (20, 3600), "account": (5, 3600)},
    "login": {"ip": (30, 900), "account": (5, 900)},
    "verify": {"ip": (30, 900), "account": (5, 900)},
    "reset": {"ip": (10, 3600), "account": (3, 3600)},
}

EMAIL_BACKEND = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
}.get(os.environ.get("ES4PS_EMAIL_BACKEND", "smtp"))
if EMAIL_BACKEND is None:
    raise ImproperlyConfigured("ES4PS_EMAIL_BACKEND must be smtp, console or file")
EMAIL_FILE_PATH = DATA_DIR / "mail"
EMAIL_HOST = os.environ.get("ES4PS_SMTP_HOST", "localhost")
EMAIL_PORT = integer("ES4PS_SMTP_PORT", 587, minimum=1)
EMAIL_HOST_USER = os.environ.get("ES4PS_SMTP_USERNAME", "")
EMAIL_HOST_PASSWORD = secret_from_file("ES4PS_SMTP_PASSWORD_FILE", required_=False)
_smtp_security = os.environ.get("ES4PS_SMTP_SECURITY", "starttls")
if _smtp_security not in ("starttls", "tls", "none"):
    raise ImproperlyConfigured("ES4PS_SMTP_SECURITY must be starttls, tls or none")
EMAIL_USE_TLS = _smtp_security == "starttls"
EMAIL_USE_SSL = _smtp_security == "tls"
EMAIL_TIMEOUT = 20
DEFAULT_FROM_EMAIL = os.environ.get("ES4PS_MAIL_FROM", "") or f"{ORGANIZATION_NAME} <noreply@{ALLOWED_HOSTS[0]}>"
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- storage -----------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("ES4PS_DATABASE_URL", "") or f"sqlite:///{DATA_DIR / 'portal.sqlite3'}",
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Several gunicorn workers write: take the write lock at BEGIN and wait for it,
        # instead of failing with "database is locked" when a read turns into a write.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# Rate-limit counters must be shared by all gunicorn workers: the database holds them.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "es4ps_cache"}}
SESSION_ENGINE = "django.contrib.sessions.backends.db"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {"django.request": {"level": "WARNING"}},
}
