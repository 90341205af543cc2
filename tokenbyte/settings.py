"""TokenByte settings: one django-environ `env`; real environment variables win.

The environment variables are documented in README.md (CONTRACT.md §2).
"""

from decimal import Decimal
from pathlib import Path

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry

# Lets generic classes such as admin.ModelAdmin[Model] be subscripted at run time, as typed.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# A fixed key for local development only; the `tokenbyte.E001` check refuses it when DEBUG is off.
INSECURE_DEV_SECRET_KEY = "django-insecure-tokenbyte-development-only-never-use-in-production"  # noqa: S105

# `make run` generates this file once and serves with its secret and DEBUG on (unless set).
# With no SECRET_KEY in the environment, every manage.py command in the checkout takes the
# same two defaults, so one run in a second terminal shares make run's sessions, encrypted
# credentials and links; a deployment sets SECRET_KEY and keeps DEBUG off by default.
LOCAL_SECRET_KEY_FILE = BASE_DIR / ".secret_key"
SECRET_KEY = env.str("SECRET_KEY", default="")
_local_secret = False
if not SECRET_KEY and LOCAL_SECRET_KEY_FILE.is_file():
    SECRET_KEY = LOCAL_SECRET_KEY_FILE.read_text().strip()
    _local_secret = bool(SECRET_KEY)
DEBUG = env.bool("DEBUG", default=_local_secret)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set it, or run `make run` once in this "
            "checkout (it generates .secret_key, which manage.py commands then use)."
        )
    SECRET_KEY = INSECURE_DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # django.contrib.admin, with django-otp's admin site: staff must verify a TOTP device.
    "accounts.apps.OTPAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",  # allauth's passkey list uses naturaltime
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_htmx",
    "template_partials",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.discord",
    "allauth.mfa",
    "tokenbyte.apps.TokenByteConfig",
    "accounts",
    "keys",
    "billing",
    "proxy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "accounts.middleware.ContentSecurityPolicyMiddleware",
    "tokenbyte.static.AsyncFriendlyWhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Every console view needs a signed-in user unless it is marked @login_not_required
    # (the landing page, /models/, allauth's and the admin's own login views).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "tokenbyte.urls"
ASGI_APPLICATION = "tokenbyte.asgi.application"
WSGI_APPLICATION = "tokenbyte.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE transactions let the console and the gateway's threads write side by side.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

# --- Redis: cache, Celery broker, shared gateway state --------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tb",
            # The console's rate limits and the routing version read it: a stalled Redis costs
            # them a second, not redis-py's default 5 s times its retries.
            "OPTIONS": {
                "socket_connect_timeout": 1.0,
                "socket_timeout": 1.0,
                "retry": Retry(NoBackoff(), 0),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
# Embedded mode (no Redis): tasks run in-process, right where they are sent.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Billing's consumer drains the gateway's usage stream this often (billing/tasks.py); a run
# that finds the worker busy expires rather than piling up.
TOKENBYTE_USAGE_DRAIN_SECONDS = env.float("TOKENBYTE_USAGE_DRAIN_SECONDS", default=1.0)
# Usage records older than this many days are deleted every hour, in bounded batches
# (billing/retention.py); rollups are kept. 0 keeps them forever.
TOKENBYTE_USAGE_RETENTION_DAYS = env.int("TOKENBYTE_USAGE_RETENTION_DAYS", default=90)
if TOKENBYTE_USAGE_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(
        f"TOKENBYTE_USAGE_RETENTION_DAYS={TOKENBYTE_USAGE_RETENTION_DAYS}: use 0 (keep) or more"
    )
# Body logging (an account's choice on /settings/): each body kept up to this many bytes (the
# rest cut, its size noted), and kept this many days (0: kept), deleted hourly in batches.
TOKENBYTE_BODY_LOG_MAX_BYTES = env.int("TOKENBYTE_BODY_LOG_MAX_BYTES", default=32 * 1024)
if TOKENBYTE_BODY_LOG_MAX_BYTES < 1:
    raise ImproperlyConfigured(
        f"TOKENBYTE_BODY_LOG_MAX_BYTES={TOKENBYTE_BODY_LOG_MAX_BYTES}: use 1 or more"
    )
TOKENBYTE_BODY_RETENTION_DAYS = env.int("TOKENBYTE_BODY_RETENTION_DAYS", default=7)
if TOKENBYTE_BODY_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(
        f"TOKENBYTE_BODY_RETENTION_DAYS={TOKENBYTE_BODY_RETENTION_DAYS}: use 0 or more"
    )
# POST /v1/responses to cards the gateway translates: responses sent with `store` (OpenAI's
# default) are kept for `previous_response_id`, `item_reference` and GET /v1/responses/{id},
# this many days (0: kept), deleted hourly in batches. Off: none kept, `store` answered false.
TOKENBYTE_STORE_RESPONSES = env.bool("TOKENBYTE_STORE_RESPONSES", default=True)
TOKENBYTE_RESPONSE_RETENTION_DAYS = env.int("TOKENBYTE_RESPONSE_RETENTION_DAYS", default=30)
if TOKENBYTE_RESPONSE_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(
        f"TOKENBYTE_RESPONSE_RETENTION_DAYS={TOKENBYTE_RESPONSE_RETENTION_DAYS}: use 0 or more"
    )
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "usage-drain": {
        "task": "billing.usage_drain",
        "schedule": TOKENBYTE_USAGE_DRAIN_SECONDS,
        "options": {"expires": max(5.0, 5 * TOKENBYTE_USAGE_DRAIN_SECONDS)},
    },
    "usage-retention": {
        "task": "billing.usage_retention",
        "schedule": 3600.0,
        "options": {"expires": 3000.0},  # a run missed is not worth two in a row
    },
    # The bodies' stream, beside the usage stream (billing/body_log.py).
    "usage-bodies-drain": {
        "task": "billing.usage_bodies_drain",
        "schedule": TOKENBYTE_USAGE_DRAIN_SECONDS,
        "options": {"expires": max(5.0, 5 * TOKENBYTE_USAGE_DRAIN_SECONDS)},
    },
    "usage-bodies-retention": {
        "task": "billing.usage_bodies_retention",
        "schedule": 3600.0,
        "options": {"expires": 3000.0},
    },
    "stored-responses-retention": {
        "task": "billing.stored_responses_retention",
        "schedule": 3600.0,
        "options": {"expires": 3000.0},
    },
    # Budget (80%, 100%) and low-balance e-mails, each once per window (keys/alerts.py).
    "spend-alerts": {
        "task": "keys.spend_alerts",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
}


# --- money ----------------------------------------------------------------------------------
def _dollars(name: str, default: str) -> Decimal:
    text = env.str(name, default=default)
    try:
        amount = Decimal(text)
    except ArithmeticError:
        raise ImproperlyConfigured(f"{name}={text!r} is not an amount of US dollars") from None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("1e-9")):
        raise ImproperlyConfigured(f"{name}={text!r}: a non-negative amount with <= 9 decimals")
    return amount


# prepaid: a request needs the balance to cover its worst case; postpaid: charges may take the
# balance below zero, down to the account's credit limit (teams that settle outside).
TOKENBYTE_BILLING_MODE = env.str("TOKENBYTE_BILLING_MODE", default="prepaid")
if TOKENBYTE_BILLING_MODE not in ("prepaid", "postpaid"):
    raise ImproperlyConfigured(
        f"TOKENBYTE_BILLING_MODE={TOKENBYTE_BILLING_MODE!r}: use prepaid or postpaid"
    )
# What a new account is credited on sign-up, and (postpaid) how far below zero it may go.
TOKENBYTE_STARTING_BALANCE = _dollars("TOKENBYTE_STARTING_BALANCE", "0")
TOKENBYTE_CREDIT_LIMIT = _dollars("TOKENBYTE_CREDIT_LIMIT", "0")
# Below this balance the console shows a banner and the owner gets one e-mail.
TOKENBYTE_LOW_BALANCE = _dollars("TOKENBYTE_LOW_BALANCE", "1")
# A reservation not renewed for this long is swept (its gateway process died); live calls
# renew theirs every third of it. A settled charge waits in Redis for the consumer at most
# TOKENBYTE_PENDING_CHARGE_SECONDS.
TOKENBYTE_RESERVATION_SECONDS = env.int("TOKENBYTE_RESERVATION_SECONDS", default=60)
TOKENBYTE_PENDING_CHARGE_SECONDS = env.int("TOKENBYTE_PENDING_CHARGE_SECONDS", default=86_400)

# --- auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# django-allauth: email is the identifier; a code proves the address before the first sign-in.
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = True
ACCOUNT_EMAIL_NOTIFICATIONS = True  # tell users when a password, email or 2FA device changes
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[TokenByte] "
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"
# ACCOUNT_RATE_LIMITS / MFA_RATE_LIMITS are left at allauth's defaults, which are on (login
# failures, sign-ups, code and password-reset mails, passkey logins), counted in the cache.

MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_PASSKEY_SIGNUP_ENABLED = True
MFA_TOTP_ISSUER = "TokenByte"
OTP_TOTP_ISSUER = "TokenByte Admin"

# Social sign-in: a provider's button shows when its credentials are set here or a SocialApp
# exists in the admin. Their verified emails sign in (and link) the account with that email;
# allauth wipes the password of such an account whose email was never verified.
SOCIALACCOUNT_PROVIDERS: dict[str, dict[str, object]] = {
    "github": {"SCOPE": ["read:user", "user:email"]},
    "discord": {"SCOPE": ["identify", "email"]},
}
for _provider, _prefix in (("github", "GITHUB"), ("discord", "DISCORD")):
    _client_id = env.str(f"{_prefix}_CLIENT_ID", default="")
    if _client_id:
        SOCIALACCOUNT_PROVIDERS[_provider]["APPS"] = [
            {"client_id": _client_id, "secret": env.str(f"{_prefix}_CLIENT_SECRET"), "key": ""}
        ]
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_QUERY_EMAIL = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_STORE_TOKENS = False

# Outgoing mail: EMAIL_URL (smtp+tls://user:pass@host:587), else Django's EMAIL_* variables,
# else the console (mail is printed to stdout).
if env.str("EMAIL_URL", default=""):
    _email = env.email_url("EMAIL_URL")
elif env.str("EMAIL_HOST", default=""):
    _email = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": env.str("EMAIL_HOST"),
        "EMAIL_PORT": env.int("EMAIL_PORT", default=25),
        "EMAIL_HOST_USER": env.str("EMAIL_HOST_USER", default=""),
        "EMAIL_HOST_PASSWORD": env.str("EMAIL_HOST_PASSWORD", default=""),
        "EMAIL_USE_TLS": env.bool("EMAIL_USE_TLS", default=False),
        "EMAIL_USE_SSL": env.bool("EMAIL_USE_SSL", default=False),
    }
else:
    _email = {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="TokenByte <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static files (served by WhiteNoise; `make run` collects them) --------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- security -------------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    # Only behind a TLS-terminating proxy that sets this header itself.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)

# --- logging: plain lines on stdout ---------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# One JSON line per API request on stderr (logger `tokenbyte.access`, proxy/gateway/observe.py):
# on by default; `off` leaves the logger at CRITICAL, where the line is never even built.
TOKENBYTE_ACCESS_LOG = env.bool("TOKENBYTE_ACCESS_LOG", default=True)
# OpenTelemetry traces (proxy/gateway/tracing.py): on when an OTLP endpoint is set, as the SDK
# reads it; the SDK's own OTEL_* variables configure the rest. Off, the SDK is never imported.
TOKENBYTE_TRACING = bool(
    env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default="")
    or env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
) and not env.bool("OTEL_SDK_DISABLED", default=False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "message": {"format": "%(message)s"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
        },
        "access": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "message",
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        "celery": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        # httpx's client logs each request at INFO: the trace exporter's posts (spans.py).
        "httpx": {"level": "WARNING"},
        "tokenbyte.access": {
            "handlers": ["access"],
            "level": "INFO" if TOKENBYTE_ACCESS_LOG else "CRITICAL",
            "propagate": False,
        },
    },
}

# --- the gateway ----------------------------------------------------------------------------
TOKENBYTE_MAX_BODY_BYTES = env.int("TOKENBYTE_MAX_BODY_BYTES", default=20 * 1024 * 1024)
# Comma-separated Fernet keys: the first encrypts, all decrypt (rotation). Empty: derived
# from SECRET_KEY.
TOKENBYTE_ENCRYPTION_KEY = env.str("TOKENBYTE_ENCRYPTION_KEY", default="")
# Processes `make run` serves with; more than one needs REDIS_URL (checked).
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=1)
SERVER_HOST = env.str("HOST", default="127.0.0.1")
SERVER_PORT = env.int("PORT", default=8000)
# --- the front door: what one client may hold (tokenbyte/front_door.py, tokenbyte/asgi.py) ---
# A request's line and headers: past either bound, 431.
TOKENBYTE_MAX_HEADER_BYTES = env.int("TOKENBYTE_MAX_HEADER_BYTES", default=64 * 1024)
TOKENBYTE_MAX_HEADERS = env.int("TOKENBYTE_MAX_HEADERS", default=100)
# Seconds from a request's first byte to the end of its headers, and from there to the end of
# its body (a total, so a byte a second cannot stretch it): past either, 408.
TOKENBYTE_HEADER_TIMEOUT = env.float("TOKENBYTE_HEADER_TIMEOUT", default=10.0)
TOKENBYTE_BODY_TIMEOUT = env.float("TOKENBYTE_BODY_TIMEOUT", default=60.0)
# Seconds a connection may sit with no request begun (a new one, or after a response).
TOKENBYTE_KEEP_ALIVE_TIMEOUT = env.float("TOKENBYTE_KEEP_ALIVE_TIMEOUT", default=5.0)
# Requests in flight per process (API and console, streams included): past it, 503 with
# Retry-After. Above the 1,000 concurrent slow requests bench/run.sh drives.
TOKENBYTE_MAX_CONCURRENCY = env.int("TOKENBYTE_MAX_CONCURRENCY", default=2048)
# Addresses (or networks) of the reverse proxies whose X-Forwarded-For / -Proto are believed;
# empty: none, not even loopback, so a local forwarder cannot choose a client's address.
FORWARDED_ALLOW_IPS = env.list("FORWARDED_ALLOW_IPS", default=[])
# /metrics (tokenbyte/metrics_endpoint.py): when set, `Authorization: Bearer <token>` is
# required; when empty, only loopback clients whose request no proxy forwarded may read it.
TOKENBYTE_METRICS_TOKEN = env.str("TOKENBYTE_METRICS_TOKEN", default="")
# allauth's rate limits count by REMOTE_ADDR, which is the trusted forwarder's X-Forwarded-For
# or the peer: never read X-Forwarded-For itself, from whoever sent it.
ALLAUTH_TRUSTED_PROXY_COUNT = 0

# How often each gateway process reads the routing version (one primary-key read in the
# database) to pick up catalog and credential changes made by any process (seconds).
TOKENBYTE_CATALOG_REFRESH_SECONDS = env.float("TOKENBYTE_CATALOG_REFRESH_SECONDS", default=0.5)

# Upstream timeouts (seconds). First byte: until the upstream starts answering (for a
# non-streaming call, the whole generation); a card may set its own. Idle: between two chunks
# of a stream. Total: the whole call, retries included.
TOKENBYTE_CONNECT_TIMEOUT = env.float("TOKENBYTE_CONNECT_TIMEOUT", default=10.0)
TOKENBYTE_FIRST_BYTE_TIMEOUT = env.float("TOKENBYTE_FIRST_BYTE_TIMEOUT", default=300.0)
TOKENBYTE_REASONING_FIRST_BYTE_TIMEOUT = env.float(
    "TOKENBYTE_REASONING_FIRST_BYTE_TIMEOUT", default=900.0
)
TOKENBYTE_STREAM_IDLE_TIMEOUT = env.float("TOKENBYTE_STREAM_IDLE_TIMEOUT", default=120.0)
TOKENBYTE_TOTAL_TIMEOUT = env.float("TOKENBYTE_TOTAL_TIMEOUT", default=1800.0)

# HTTP/2 to https upstreams that offer it (httpx's pool); off: HTTP/1.1 keep-alive
# (proxy/upstream/transport.py).
TOKENBYTE_UPSTREAM_HTTP2 = env.bool("TOKENBYTE_UPSTREAM_HTTP2", default=False)
# Open connections per upstream origin (per process): past it, calls wait for one up to the
# connect timeout (then 503). Idle kept-alive connections are closed after the keep-alive.
TOKENBYTE_UPSTREAM_MAX_CONNECTIONS = env.int("TOKENBYTE_UPSTREAM_MAX_CONNECTIONS", default=1024)
TOKENBYTE_UPSTREAM_KEEPALIVE = env.float("TOKENBYTE_UPSTREAM_KEEPALIVE", default=30.0)

# Slow dependencies (README "Configuration"). Hot-path Redis calls (key cache, rate limits)
# get no answer after this many seconds; a few in a row open a breaker that skips Redis (the
# documented fallbacks serve meanwhile) and probes it again after the breaker's seconds.
TOKENBYTE_REDIS_TIMEOUT = env.float("TOKENBYTE_REDIS_TIMEOUT", default=0.1)
TOKENBYTE_REDIS_BREAKER_SECONDS = env.float("TOKENBYTE_REDIS_BREAKER_SECONDS", default=5.0)
# Key-cache misses have threads of their own; past the backlog an uncached key gets 503.
TOKENBYTE_KEY_LOOKUP_THREADS = env.int("TOKENBYTE_KEY_LOOKUP_THREADS", default=4)
TOKENBYTE_KEY_LOOKUP_BACKLOG = env.int("TOKENBYTE_KEY_LOOKUP_BACKLOG", default=100)
# Distinct unknown keys one client address may have looked up per minute (then 429).
TOKENBYTE_UNKNOWN_KEYS_PER_MINUTE = env.int("TOKENBYTE_UNKNOWN_KEYS_PER_MINUTE", default=30)

# Upstream credentials that `bootstrap` creates: <NAME>_API_KEY / <NAME>_BASE_URL per provider.
TOKENBYTE_PROVIDER_ENV = {
    provider: {
        "api_key": env.str(f"{prefix}_API_KEY", default=""),
        "base_url": env.str(f"{prefix}_BASE_URL", default=""),
    }
    for provider, prefix in (
        ("openai", "OPENAI"),
        ("anthropic", "ANTHROPIC"),
        ("gemini", "GEMINI"),
        ("mistral", "MISTRAL"),
        ("openai-compatible", "OPENAI_COMPATIBLE"),
    )
}
