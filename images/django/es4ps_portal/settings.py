"""Django settings of the portal, all from the environment (declared in `environment`, see docs/interfaces.md).

Required: ES4PS_PORTAL_HOST, DJANGO_SECRET_KEY_FILE, ES4PS_REALM and
ES4PS_ALLOWED_EMAIL_DOMAINS. The broker, key and LDAP settings are checked
when first used, so `migrate` and `collectstatic` run without them.
"""

from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import es4ps_contract
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from es4ps_contract.passwords import RANGE_FILES_DIR, InvalidPolicy, PasswordPolicy

from es4ps_portal.accounts.email_domains import InvalidDomain, parse_allowed_domains
from es4ps_portal.environment import (
    LANGUAGE_CODES,
    env,
    parse_pending_limits,
    parse_rate_limits,
    parse_reminder_days,
    parse_source_ranges,
    setting,
)
from es4ps_portal.provisioning.policies import InvalidPolicies, parse_policies, parse_unix

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(setting(env.text, "ES4PS_DATA_DIR"))

DEBUG = setting(env.text, "DJANGO_DEBUG") == "1"
SECRET_KEY = setting(env.file_text, "DJANGO_SECRET_KEY_FILE")

# --- where the portal is reached -------------------------------------------------
PORTAL_HOST = setting(env.text, "ES4PS_PORTAL_HOST").lower()
PORTAL_SCHEME = setting(env.choice, "ES4PS_PORTAL_SCHEME", ("https", "http"))
# Links in mails are built from this, never from the request's Host header.
PORTAL_BASE_URL = f"{PORTAL_SCHEME}://{PORTAL_HOST}"
# The staff door (spec.portal.admin): the admin on a host of its own (then never on the public one), and the
# client addresses that may reach it at all (web.admin_door).
ADMIN_HOST = setting(env.text, "ES4PS_ADMIN_HOST").lower()
ADMIN_SOURCE_RANGES = parse_source_ranges(setting(env.text, "ES4PS_ADMIN_SOURCE_RANGES"))
ADMIN_BASE_URL = f"{PORTAL_SCHEME}://{ADMIN_HOST}" if ADMIN_HOST else PORTAL_BASE_URL
ALLOWED_HOSTS = [urlsplit(url).hostname for url in dict.fromkeys([PORTAL_BASE_URL, ADMIN_BASE_URL])]
CSRF_TRUSTED_ORIGINS = list(dict.fromkeys([PORTAL_BASE_URL, ADMIN_BASE_URL]))
# The Ingress terminates TLS and says so in X-Forwarded-Proto; it also appends the
# client's address to X-Forwarded-For. How many proxies append to it decides
# which entry is the client (for rate limits); 0 means "use the peer address".
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
TRUSTED_PROXY_COUNT = setting(env.integer, "ES4PS_TRUSTED_PROXY_COUNT", minimum=0, maximum=10)

# --- the organisation ---------------------------------------------------------------
ORGANIZATION_NAME = setting(env.text, "ES4PS_ORGANIZATION_NAME")
REALM = setting(env.text, "ES4PS_REALM").upper()
try:
    ALLOWED_EMAIL_DOMAINS = parse_allowed_domains(setting(env.text, "ES4PS_ALLOWED_EMAIL_DOMAINS"))
except InvalidDomain as exc:
    raise ImproperlyConfigured(f"ES4PS_ALLOWED_EMAIL_DOMAINS: {exc}") from None
# Where new accounts go and what they get, by e-mail domain (provisioning.policies).
try:
    UNIX_ATTRIBUTES = parse_unix(setting(env.raw, "ES4PS_UNIX_ATTRIBUTES"))
    POLICIES = parse_policies(setting(env.raw, "ES4PS_POLICIES"), ALLOWED_EMAIL_DOMAINS, UNIX_ATTRIBUTES)
except InvalidPolicies as exc:
    raise ImproperlyConfigured(str(exc)) from None
# Manual: a confirmed registration waits for a staff member with the approve_registration permission.
REGISTRATION_APPROVAL = setting(env.choice, "ES4PS_REGISTRATION_APPROVAL", ("Automatic", "Manual"))
# The audit trail keeps this many days (the results consumer prunes it every hour).
AUDIT_RETENTION_DAYS = setting(env.integer, "ES4PS_AUDIT_RETENTION_DAYS", minimum=1, maximum=36500)

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
CSRF_FAILURE_VIEW = "es4ps_portal.web.views.pages.csrf_failure"
# Only the portal's own scripts, styles and forms (django-csp writes the header).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}

# --- application ---------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "csp",
    # The staff's second factor: TOTP devices, and the admin's sign-in that verifies one (web.staff_sign_in).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "es4ps_portal.accounts",
    "es4ps_portal.provisioning",
    "es4ps_portal.audit",
    "es4ps_portal.database",
    "es4ps_portal.web",
]

MIDDLEWARE = [
    # First: probes reach the pod by IP, which ALLOWED_HOSTS would refuse.
    "es4ps_portal.middleware.HealthCheckMiddleware",
    # Second: the probes are not counted, everything else is (static files and refused hosts too).
    "es4ps_portal.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # The staff door: the admin only on its host and from its ranges (spec.portal.admin), before any session.
    "es4ps_portal.web.admin_door.AdminDoorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the one chosen with the switcher (a cookie), else the browser's, else ES4PS_DEFAULT_LANGUAGE.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session's sign-in passed a second factor (the admin requires it).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
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
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "es4ps_portal.web.context_processors.organization",
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
# The name the staff's authenticator apps show for their TOTP entry.
OTP_TOTP_ISSUER = ORGANIZATION_NAME
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:account"
LOGOUT_REDIRECT_URL = "web:login"
LDAP_URL = setting(env.text, "ES4PS_LDAP_URL")
LDAP_CA_FILE = setting(env.text, "ES4PS_LDAP_CA_FILE")
# Each DC's own address: a password the DC the Service picked calls wrong is checked on the others.
LDAP_DC_URLS = tuple(url.strip() for url in setting(env.text, "ES4PS_LDAP_DC_URLS").split(",") if url.strip())
LDAP_TIMEOUT_S = 10
# The broker connection (ES4PS_BROKER_*), turned into Celery settings by the task contract.
BROKER_ENVIRON = {name: value for name, value in env.environ.items() if name.startswith("ES4PS_BROKER_")}
# Key files of the task contract: the portal seals passwords and signs tasks.
SEALING_PUBLIC_KEY_FILE = setting(env.text, "ES4PS_SEALING_PUBLIC_KEY_FILE")
SIGNING_PRIVATE_KEY_FILE = setting(env.text, "ES4PS_SIGNING_PRIVATE_KEY_FILE")
# The public halves of the DCs' result keys: the consumer records only results signed by a DC.
RESULT_KEYS_DIR = setting(env.text, "ES4PS_RESULT_KEYS_DIR")
# How often the consumer's relay asks a worker for the domain's computers (the admin's computer list); 0: never
# on its own (staff still refresh it from the list).
COMPUTERS_REPORT_INTERVAL_S = 300
# The staff superuser `es4ps-portal serve` creates; its name is reserved for staff.
SUPERUSER_USERNAME = setting(env.text, "ES4PS_SUPERUSER_USERNAME").lower()

# The domain's password policy (spec.directory.passwordPolicy): the forms check and explain it, the
# reminders follow its maximum age. The first DC applies the same JSON to the domain.
try:
    PASSWORD_POLICY = PasswordPolicy.from_json(setting(env.raw, "ES4PS_PASSWORD_POLICY"))
except InvalidPolicy as exc:
    raise ImproperlyConfigured(f"{exc} (see docs/interfaces.md)") from None
# The breach corpus of the policy (breachedPasswords): where the operator mounts its range files, how long the
# range API may take before the lookup counts as failed (and the password is accepted).
BREACHED_RANGE_FILES_DIR = RANGE_FILES_DIR
BREACH_LOOKUP_TIMEOUT_S = 3
PASSWORD_EXPIRY_REMINDER_DAYS = parse_reminder_days(setting(env.text, "ES4PS_PASSWORD_EXPIRY_REMINDER_DAYS"))
# How long after a sign-in with an expired (but right) password its owner may choose a new one.
EXPIRED_PASSWORD_CHANGE_S = 600

# --- tokens, mails and rate limits ------------------------------------------------------
TOKEN_TTL_HOURS = setting(env.integer, "ES4PS_TOKEN_TTL_HOURS", minimum=1)
# A registration whose address is not verified this long after it was made is dropped (nothing of it is in
# the directory), so a mistyped or someone else's address does not hold the name and the address for
# ever. 0 keeps them.
UNVERIFIED_RETENTION_HOURS = setting(env.integer, "ES4PS_UNVERIFIED_RETENTION_HOURS", minimum=0)
if 0 < UNVERIFIED_RETENTION_HOURS < TOKEN_TTL_HOURS:
    raise ImproperlyConfigured(
        "ES4PS_UNVERIFIED_RETENTION_HOURS must be 0 (keep) or at least ES4PS_TOKEN_TTL_HOURS: "
        "a registration must outlive its verification mail"
    )
# The verification mail of one registration: at most this many mails (the first included), this
# long apart, and this many wrong codes over all of them; the registration expires regardless.
RESEND_COOLDOWN_S = 60
VERIFICATION_MAILS_MAX = 5
CODE_MAX_ATTEMPTS = 10
# action -> {"ip" | "account": (attempts, window in seconds)}, from spec.portal.rateLimits
RATE_LIMITS = parse_rate_limits(setting(env.raw, "ES4PS_RATE_LIMITS"))
# Caps on unconfirmed registrations: {"perDomain": n, "perAddress": n, "perEmailDomain": n}.
PENDING_REGISTRATION_LIMITS = parse_pending_limits(setting(env.raw, "ES4PS_PENDING_REGISTRATION_LIMITS"))

# Mails leave only through the configured server. The console backend writes every mail, its links and codes
# too, to the log: a development setting that a portal in production (DEBUG off) refuses to start with.
_email_backend = setting(env.choice, "ES4PS_EMAIL_BACKEND", ("smtp", "console"))
if _email_backend == "console" and not DEBUG:
    raise ImproperlyConfigured(
        "ES4PS_EMAIL_BACKEND=console writes mails and their links to the log: only with DJANGO_DEBUG=1 (development)"
    )
EMAIL_BACKEND = f"django.core.mail.backends.{_email_backend}.EmailBackend"
# Empty without a server (spec.portal.smtp unset): no mail is sent, and the operator reports the domain not Ready.
EMAIL_HOST = setting(env.text, "ES4PS_SMTP_HOST")
EMAIL_PORT = setting(env.integer, "ES4PS_SMTP_PORT", minimum=1, maximum=65535)
EMAIL_HOST_USER = setting(env.text, "ES4PS_SMTP_USERNAME")
EMAIL_HOST_PASSWORD = setting(env.file_text, "ES4PS_SMTP_PASSWORD_FILE")
_smtp_security = setting(env.choice, "ES4PS_SMTP_SECURITY", ("starttls", "tls", "none"))
EMAIL_USE_TLS = _smtp_security == "starttls"
EMAIL_USE_SSL = _smtp_security == "tls"
EMAIL_TIMEOUT = 20
DEFAULT_FROM_EMAIL = setting(env.text, "ES4PS_MAIL_FROM") or f"{ORGANIZATION_NAME} <noreply@{ALLOWED_HOSTS[0]}>"
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- storage -----------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        setting(env.text, "ES4PS_DATABASE_URL") or f"sqlite:///{DATA_DIR / 'portal.sqlite3'}",
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

# --- languages ------------------------------------------------------------------------------
# Every page and mail in each of these; the portal's texts are in locale/, the contract's (field rules,
# password policy, the workers' reasons) beside the contract.
LANGUAGES = [("en", _("English")), ("pt-br", _("Portuguese (Brazil)")), ("es", _("Spanish"))]
LANGUAGE_CODE = LANGUAGE_CODES[setting(env.choice, "ES4PS_DEFAULT_LANGUAGE", LANGUAGE_CODES)]
LOCALE_PATHS = [PACKAGE_DIR / "locale", Path(es4ps_contract.__file__).resolve().parent / "locale"]
LANGUAGE_COOKIE_NAME = "__Host-language" if SECURE else "language"
LANGUAGE_COOKIE_SECURE = SECURE
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
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
