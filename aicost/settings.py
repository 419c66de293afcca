"""aicost settings: 12-factor, every value from the environment (see .env.example)."""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local env file (.env beside manage.py, which bin/dev writes; AICOST_ENV_FILE names another, relative
# to the project) is read when present; real environment variables win over it.
ENV_FILE = BASE_DIR / (os.environ.get("AICOST_ENV_FILE") or ".env")
environ.Env.read_env(ENV_FILE, overwrite=False)

DEBUG = env.bool("DEBUG", default=False)


def _required_in_production(name: str, dev_default: str) -> str:
    """Secrets have a default only while DEBUG is on; production must set them."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"The environment variable {name} is required when DEBUG is off. "
        f"Set it (see .env.example) or set DEBUG=true for local development."
    )


SECRET_KEY = _required_in_production("SECRET_KEY", "dev-only-insecure-secret-key-not-for-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # First: its runserver (schema guard) must win over whitenoise's and staticfiles'.
    "schemaguard.apps.SchemaGuardConfig",
    "core.apps.CoreConfig",
    "dashboard.apps.DashboardConfig",
    "dashboard.apps.DashboardAdminConfig",  # django.contrib.admin with the AI cost page
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pricing.apps.PricingConfig",
    "usage.apps.UsageConfig",
    "alerts.apps.AlertsConfig",
    "ingest.apps.IngestConfig",
]

MIDDLEWARE = [
    # First: it counts every response, redirects and errors of the middleware below included.
    "dashboard.metrics.RequestMetricsMiddleware",
    # Reads a request's whole body before anything else runs (no database connection is held while a
    # slow client uploads) and answers 413 JSON when it is larger than AICOST_MAX_BODY_BYTES.
    "core.middleware.RequestBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions, before common (Django's order): Accept-Language picks the language per request.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "schemaguard.middleware.DatabaseErrorPageMiddleware",
]

ROOT_URLCONF = "aicost.urls"
WSGI_APPLICATION = "aicost.wsgi.application"
ASGI_APPLICATION = "aicost.asgi.application"

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

# Database: PostgreSQL in production and tests, SQLite as the embedded default.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Optional read replica (a streaming replica of default): the stats, trend and export reads go there,
# everything else stays on default (core/db_routers.py).
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = {
        **env.db("DATABASE_REPLICA_URL"),
        "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
        "CONN_HEALTH_CHECKS": True,
        # Tests create no second database: the replica alias reads the test copy of default.
        "TEST": {"MIRROR": "default"},
    }
    if "postgresql" in DATABASES["replica"]["ENGINE"]:
        # A replica that does not answer is skipped (core/db_routers.py): fail its connects fast.
        DATABASES["replica"]["OPTIONS"] = {"connect_timeout": 2, **DATABASES["replica"].get("OPTIONS", {})}
    DATABASE_ROUTERS = ["core.db_routers.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A connection pool per process (psycopg_pool, PostgreSQL only; README, Deploying): at most
# AICOST_DB_POOL_MAX_SIZE connections shared by the process's threads, each taken for one request and
# given back at its end (so CONN_MAX_AGE is 0), health-checked when taken; a request waits at most
# AICOST_DB_POOL_TIMEOUT seconds for one (then 503 database_unavailable). gunicorn.conf.py turns it on for
# its workers (many threads, few connections); 0, the default elsewhere (manage.py, cron, tests), keeps one
# connection per thread, persistent for CONN_MAX_AGE.
AICOST_DB_POOL_MAX_SIZE = env.int("AICOST_DB_POOL_MAX_SIZE", default=0)
AICOST_DB_POOL_TIMEOUT = env.float("AICOST_DB_POOL_TIMEOUT", default=3.0)
for _database in DATABASES.values():
    if _database["ENGINE"] != "django.db.backends.postgresql":
        continue
    _options = _database.setdefault("OPTIONS", {})
    # No JIT compilation: the rollup reads join terms to ranges, which the planner cannot size (it
    # guesses 0.5% of a table per range), and it would spend 100-250 ms compiling a few-ms statement.
    _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
    if AICOST_DB_POOL_MAX_SIZE > 0:
        _database["CONN_MAX_AGE"] = 0  # Django refuses a pool with persistent connections.
        _options["pool"] = {
            "min_size": min(2, AICOST_DB_POOL_MAX_SIZE),
            "max_size": AICOST_DB_POOL_MAX_SIZE,
            "timeout": AICOST_DB_POOL_TIMEOUT,
            # A lost connection is reconnected with backoff (1 s, doubling) for at most this long; then a
            # waiting request starts a new attempt at once, so after an outage the pool is back within
            # seconds, not after a backoff as long as the outage.
            "reconnect_timeout": 5.0,
        }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The language when a request asks for none of LANGUAGES (Accept-Language), and of what aicost writes
# outside a request: stored alert messages, notifications, command output.
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en-us")
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
# Calendar days and months (daily trend, monthly budgets) are counted in this zone.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Served by WhiteNoise from STATIC_ROOT after `collectstatic`: hashed names, compressed, cached for ever.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Security: secure by default, relaxed only by DEBUG for local development.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes and Prometheus speak plain HTTP to the pod/host directly. (A redirect would not protect the
# metrics token anyway: the scraper has sent it before it sees the redirect.)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "usage.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["usage.permissions.CanReadStats"],
    # Per-key rate limits, shared by every worker (README, Rate limits); a view never overrides this.
    "DEFAULT_THROTTLE_CLASSES": ["usage.throttles.ApiKeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["core.api.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "core.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.AicostAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Money and percentages are JSON numbers written from the exact Decimal (36.64875634, never through
    # a float): DecimalFields hand the renderer Decimals, core.api.renderers writes their digits.
    "COERCE_DECIMAL_TO_STRING": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "aicost API",
    "DESCRIPTION": (
        "What your AI/LLM calls cost. Money amounts and percentages are JSON numbers (format: decimal) "
        "written from the exact decimal: reports and budgets with at most 8 places, stored call costs "
        "with up to 24, percentages with 2. A float (JavaScript's Number) keeps about 15-17 significant "
        "digits; to keep every digit, parse the number text with a decimal type (Python: "
        "json.loads(text, parse_float=Decimal)) or read the CSV export. Money is accepted as a JSON "
        "number or a string and read exactly."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["usage.permissions.CanReadStats"],
    # Request bodies get components of their own, with what only input has (minLength of required text).
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from the sidecar package: the docs work offline, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# aicost itself
AICOST_CURRENCY = env.str("AICOST_CURRENCY", default="USD")
# ISO 4217: every sum of money across models (totals, rollups, trend, budgets, alerts, export) is in
# this currency, converted at ingestion at the exchange rate in force at each call's timestamp.
AICOST_REPORTING_CURRENCY = env.str("AICOST_REPORTING_CURRENCY", default="USD")
AICOST_MAX_BATCH_SIZE = env.int("AICOST_MAX_BATCH_SIZE", default=1000)
# Largest request body Django accepts (413 JSON above, core.middleware.RequestBodyMiddleware): 4 KB per
# record of a full batch (a record is ~0.5 KB of JSON; the room is for error messages), 4 MB by default.
# /v1/traces has its own limit, AICOST_OTLP_MAX_BODY_BYTES.
AICOST_MAX_BODY_BYTES = env.int("AICOST_MAX_BODY_BYTES", default=AICOST_MAX_BATCH_SIZE * 4096)
# Per-key rate limits (README, Rate limits): each process leases a share of a key's limit from the shared
# counter, at most 1/(2 x AICOST_RATE_LEASE_PROCESSES) of what is left and at most AICOST_RATE_LEASE_MAX,
# so most requests under a limit touch no shared row. The processes that serve at once: gunicorn's workers.
AICOST_RATE_LEASE_PROCESSES = env.int(
    "AICOST_RATE_LEASE_PROCESSES", default=env.int("GUNICORN_WORKERS", default=min(2 * (os.cpu_count() or 1) + 1, 8))
)
AICOST_RATE_LEASE_MAX = env.int("AICOST_RATE_LEASE_MAX", default=10_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = AICOST_MAX_BODY_BYTES
# PostgreSQL: monthly partitions of the usage log kept ready beyond the current UTC month.
AICOST_USAGE_PARTITIONS_AHEAD = env.int("AICOST_USAGE_PARTITIONS_AHEAD", default=3)
# Days an idempotency key is remembered: a retry with the same (decision_id, idempotency_key) must come
# within them to be recognised. Older keys are removed by `usage_partitions` (daily) and `usage_retention`.
AICOST_IDEMPOTENCY_RETENTION_DAYS = env.int("AICOST_IDEMPOTENCY_RETENTION_DAYS", default=7)
# PostgreSQL: each process that records usage compacts the rollups' delta rows in a background
# thread every this many seconds (inf: never; `manage.py usage_rollups_compact` compacts on demand).
AICOST_ROLLUP_COMPACT_SECONDS = env.float("AICOST_ROLLUP_COMPACT_SECONDS", default=1.0)

# OpenTelemetry (POST /v1/traces): the span attributes (else the resource's) that give a GenAI call's
# decision_id, user_id and purpose, first present wins; decision_id defaults to the trace id.
AICOST_OTLP_DECISION_ID_ATTRIBUTES = env.list("AICOST_OTLP_DECISION_ID_ATTRIBUTES", default=["aicost.decision_id"])
AICOST_OTLP_USER_ID_ATTRIBUTES = env.list(
    "AICOST_OTLP_USER_ID_ATTRIBUTES", default=["aicost.user_id", "user.id", "enduser.id"]
)
AICOST_OTLP_PURPOSE_ATTRIBUTES = env.list(
    "AICOST_OTLP_PURPOSE_ATTRIBUTES", default=["aicost.purpose", "gen_ai.operation.name"]
)
# gen_ai.operation.name values of spans that group model calls (their tokens are the calls' sums): ignored.
AICOST_OTLP_IGNORED_OPERATIONS = env.list(
    "AICOST_OTLP_IGNORED_OPERATIONS",
    default=[
        "invoke_agent",
        "create_agent",
        "execute_tool",
        "retrieval",
        "search_memory",
        "update_memory",
        "delete_memory",
        "create_memory_store",
        "delete_memory_store",
    ],
)
# Largest OTLP request body, compressed and decompressed (413 above).
AICOST_OTLP_MAX_BODY_BYTES = env.int("AICOST_OTLP_MAX_BODY_BYTES", default=16 * 1024 * 1024)

# Bearer token Prometheus sends to /metrics; empty: only staff and read-scoped API keys may scrape.
AICOST_METRICS_TOKEN = env.str("AICOST_METRICS_TOKEN", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Alerts (issue #6): thresholds, anomaly detection, notifications --------------------
# "percent:level" pairs; levels are info, warning, critical. Validated by the alerts system checks.
AICOST_ALERT_THRESHOLDS = env.str("AICOST_ALERT_THRESHOLDS", default="50:info,80:warning,100:critical")
AICOST_ERROR_RATE_THRESHOLDS = env.str("AICOST_ERROR_RATE_THRESHOLDS", default="10:warning,25:critical")
AICOST_ERROR_RATE_MIN_CALLS = env.int("AICOST_ERROR_RATE_MIN_CALLS", default=20)
AICOST_ERROR_RATE_WINDOW_HOURS = env.int("AICOST_ERROR_RATE_WINDOW_HOURS", default=1)
AICOST_SPEND_SPIKE_THRESHOLDS = env.str("AICOST_SPEND_SPIKE_THRESHOLDS", default="300:warning")
AICOST_SPEND_SPIKE_MIN_COST = env.str("AICOST_SPEND_SPIKE_MIN_COST", default="1.00")
AICOST_SPEND_SPIKE_TRAILING_DAYS = env.int("AICOST_SPEND_SPIKE_TRAILING_DAYS", default=7)
AICOST_ALERT_ANOMALY_INGEST_INTERVAL_SECONDS = env.float("AICOST_ALERT_ANOMALY_INGEST_INTERVAL_SECONDS", default=30.0)
AICOST_ALERT_EMAIL_TO = env.list("AICOST_ALERT_EMAIL_TO", default=[])
AICOST_ALERT_WEBHOOK_URL = env.str("AICOST_ALERT_WEBHOOK_URL", default="")
AICOST_ALERT_DELIVERY_TIMEOUT = env.float("AICOST_ALERT_DELIVERY_TIMEOUT", default=5.0)
AICOST_ALERT_DELIVERY_MAX_ATTEMPTS = env.int("AICOST_ALERT_DELIVERY_MAX_ATTEMPTS", default=8)
AICOST_ALERT_RETRY_BACKOFF_SECONDS = env.int("AICOST_ALERT_RETRY_BACKOFF_SECONDS", default=60)
# E-mail (alerts): EMAIL_URL like smtp+tls://user:password@smtp.example.com:587 (django-environ email_url).
vars().update(env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="aicost@localhost")
