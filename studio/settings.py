"""Image Studio settings.

Everything comes from the environment; the defaults make a fresh clone run with no set-up:
SQLite under var/, django-q2's ORM broker, media on local disk. See README.md for the list.
"""

import os
import secrets
import socket
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("STUDIO_VAR_DIR", BASE_DIR / "var"))


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), not {value!r}")


def env_int(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def env_count(name, default):
    """A whole number of something (processes, threads, jobs): 0 would stop the work, so it is an error."""
    value = env_int(name, default)
    if value < 1:
        raise ImproperlyConfigured(f"{name} must be at least 1, not {value}")
    return value


def env_float(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def env_list(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def read_or_create_secret_key(path):
    # Generated once and kept in a git-ignored file so sessions survive restarts
    # without anyone having to invent a key for a local install.
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


def database_from_url(url, conn_max_age):
    # Messages name the scheme only: the URL itself may carry a password.
    try:
        config = dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
    except Exception as exc:  # dj-database-url raises several types for bad URLs
        problem = "it has no scheme"
        if "://" in url:
            problem = f"{url.split('://', 1)[0]!r} is not a supported scheme"
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a valid database URL: {problem} (use postgres://user@host:port/dbname "
            f"or sqlite:////absolute/path.sqlite3; {type(exc).__name__})"
        ) from None
    if not config.get("ENGINE"):
        raise ImproperlyConfigured("DATABASE_URL names no known database engine")
    if not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL names no database (expected …/dbname at the end)")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config.update(sqlite_options(conn_max_age))
    return config


def sqlite_options(conn_max_age):
    # IMMEDIATE transactions take the write lock up front, so the web process and the
    # worker queue behind each other (busy timeout) instead of failing half-way with
    # "database is locked"; WAL lets readers carry on while one of them writes.
    return {
        "CONN_MAX_AGE": conn_max_age,
        "CONN_HEALTH_CHECKS": False,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
        },
    }


SECRET_KEY = env_str("SECRET_KEY") or read_or_create_secret_key(VAR_DIR / "secret_key")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "csp",
    "template_partials",
    "django_q",
    "axes",
    "studio",
    "studio.simulator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the body: an oversized upload is refused by its Content-Length.
    "studio.request_limits.RequestSizeLimitMiddleware",
    "csp.middleware.CSPMiddleware",
    "studio.headers.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "studio.urls"
WSGI_APPLICATION = "studio.wsgi.application"

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
                "studio.context_processors.header",
            ],
            # {% partialdef %} everywhere without a {% load %} in each template.
            "builtins": ["template_partials.templatetags.partials"],
        },
    },
]

# Connections are kept this many seconds (each web thread and worker keeps its own): django-q2's
# ORM broker closes a connection past its age before every enqueue and dequeue, and at 0 that is
# a new connection for every task handed over and every broker poll. Lower it (0: one connection
# per request) when many threads share a small PostgreSQL `max_connections`.
DB_CONN_MAX_AGE = env_int("STUDIO_DB_CONN_MAX_AGE", 60)

# The web server of `make run` (manage.py run_studio): gunicorn processes × threads each. A
# process's threads share one GIL, handed over at every query; with 16 threads as 4 × 4 rather
# than 2 × 8 the jobs page's poll served 2.5 times the requests (bench/poll_fragment.py).
STUDIO_WEB_WORKERS = env_count("STUDIO_WEB_WORKERS", 4)
STUDIO_WEB_THREADS = env_count("STUDIO_WEB_THREADS", 4)
DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'studio.sqlite3'}", DB_CONN_MAX_AGE
    ),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# django-axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# 5 wrong passwords lock that username from that address for 15 minutes (/accounts/login/ and
# /admin/login/ alike). Counted per username *and* address, so a guesser can neither lock
# everyone out from one address nor lock one person out of every address.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "axes/lockout.html"
AXES_RESET_ON_SUCCESS = True
LOGIN_REDIRECT_URL = "create"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or VAR_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Media in an S3-compatible bucket, shared by every web server and worker (django-storages);
# the keys come from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or
# any other source boto3 reads). The bucket stays private: the portal streams every file to the
# browser after its access check, so objects are never given a public ACL and no URL to the
# bucket ever reaches a page.
STUDIO_S3_BUCKET = env_str("STUDIO_S3_BUCKET")
STUDIO_S3_ENDPOINT_URL = env_str("STUDIO_S3_ENDPOINT_URL")
STUDIO_S3_REGION = env_str("STUDIO_S3_REGION")
if STUDIO_S3_BUCKET:
    if STUDIO_S3_ENDPOINT_URL and not STUDIO_S3_ENDPOINT_URL.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"STUDIO_S3_ENDPOINT_URL must start with http:// or https://, not {STUDIO_S3_ENDPOINT_URL!r}"
        )
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": STUDIO_S3_BUCKET,
            "endpoint_url": STUDIO_S3_ENDPOINT_URL or None,
            "region_name": STUDIO_S3_REGION or None,
            # As on local disk: a name already taken gets a suffix, never overwrites a file.
            "file_overwrite": False,
            # No ACL header: objects inherit the bucket's own (private) policy.
            "default_acl": None,
            # Should a URL ever be asked for, it is signed and short-lived, never public.
            "querystring_auth": True,
            "querystring_expire": 300,
        },
    }
elif STUDIO_S3_ENDPOINT_URL or STUDIO_S3_REGION:
    raise ImproperlyConfigured("STUDIO_S3_ENDPOINT_URL and STUDIO_S3_REGION need STUDIO_S3_BUCKET as well")
if DEBUG or env_bool("STUDIO_TESTING", False):
    # No collectstatic needed for runserver and tests; whitenoise serves from the finders.
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    WHITENOISE_USE_FINDERS = True
    WHITENOISE_AUTOREFRESH = True

SESSION_COOKIE_HTTPONLY = True
# One switch for a deployment behind TLS: secure cookies, HSTS, and http:// redirected to https://.
# (SESSION_COOKIE_SECURE, the older switch, still turns on the secure cookies alone.)
STUDIO_HTTPS = env_bool("STUDIO_HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", STUDIO_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = STUDIO_HTTPS
# The load balancer's health check comes over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = 31536000 if STUDIO_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = STUDIO_HTTPS
# Only a promise to browsers until someone submits the domain to hstspreload.org, which needs
# the apex domain's own header anyway; check --deploy asks for it.
SECURE_HSTS_PRELOAD = STUDIO_HTTPS
# Behind a TLS-terminating proxy, the header it sets (as Django sees it, e.g.
# HTTP_X_FORWARDED_PROTO) tells Django the request was https. Only set it if the proxy always
# overwrites that header: otherwise a client could claim https itself.
STUDIO_PROXY_SSL_HEADER = env_str("STUDIO_PROXY_SSL_HEADER")
SECURE_PROXY_SSL_HEADER = (STUDIO_PROXY_SSL_HEADER, "https") if STUDIO_PROXY_SSL_HEADER else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Scripts and styles come only from our own static files: no inline script or style attribute,
# no eval (htmx runs with allowEval off, see base.html). Images also as data: and blob: URLs
# (previews made in the browser).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# Browser features the portal never uses, denied to its pages (and to anything injected into
# them) by the Permissions-Policy header (studio/headers.py).
STUDIO_PERMISSIONS_POLICY_DENY = env_list("STUDIO_PERMISSIONS_POLICY_DENY", [
    "accelerometer", "autoplay", "bluetooth", "camera", "display-capture", "geolocation",
    "gyroscope", "hid", "magnetometer", "microphone", "midi", "payment", "publickey-credentials-get",
    "screen-wake-lock", "serial", "usb", "xr-spatial-tracking",
])
DATA_UPLOAD_MAX_MEMORY_SIZE = 30 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Background work (django-q2) --------------------------------------------------------
# The project's own retry logic decides what is retried: django-q2 must never re-run paid
# work by itself, so failures are acknowledged and a task gets one attempt. The timeout
# covers the slowest task (a blocking anyfast call); retry is above it, as django-q2 needs.
REDIS_URL = env_str("REDIS_URL")
Q_CLUSTER = {
    "name": env_str("STUDIO_Q_NAME", "studio"),
    "workers": env_int("STUDIO_Q_WORKERS", 4),
    "recycle": 200,
    "timeout": 330,
    "retry": 400,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 500,
    # How often an idle worker asks the ORM broker for a task (Redis pushes them at once):
    # a download waits half of it on average. One indexed read each, on a kept connection.
    "poll": 0.1,
    "label": "Background tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
# Failed logins are counted in the database, or in Redis when there is one (every web process
# shares it, and old attempts expire by themselves). Django's default cache stays as it is.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "axes": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
    }
    AXES_CACHE = "axes"
    AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"

# --- Gateways ---------------------------------------------------------------------------
STUDIO_GATEWAY_DEFAULT_URLS = {
    "anyfast": "https://www.anyfast.ai",
    "apimart": "https://api.apimart.ai",
    "gccai": "https://gccai.heqingsong.uk",
    "foxapi": "https://api.foxapi.cc",
}
STUDIO_GATEWAYS = {
    key: {
        "api_key": env_str(f"STUDIO_{key.upper()}_API_KEY"),
        "base_url": (env_str(f"STUDIO_{key.upper()}_BASE_URL") or default_url).rstrip("/"),
    }
    for key, default_url in STUDIO_GATEWAY_DEFAULT_URLS.items()
}
# With no key, a gateway talks to the built-in simulator when this is on (make run turns it on).
STUDIO_SIMULATOR = env_bool("STUDIO_SIMULATOR", False)
# Where the simulator is reached (it is mounted at /sim/ on the portal itself).
STUDIO_SIMULATOR_URL = env_str("STUDIO_SIMULATOR_URL", "http://127.0.0.1:8000").rstrip("/")
# Seconds a simulated task takes; tests set it low.
STUDIO_SIMULATOR_LATENCY = env_float("STUDIO_SIMULATOR_LATENCY", 6.0)
# How long the simulator's `[sim:timeout]` fault keeps a request waiting.
STUDIO_SIMULATOR_TIMEOUT_SLEEP = env_float("STUDIO_SIMULATOR_TIMEOUT_SLEEP", 30.0)
# The portal's address as seen from the internet: foxapi only accepts image URLs.
STUDIO_PUBLIC_URL = env_str("STUDIO_PUBLIC_URL", STUDIO_SIMULATOR_URL).rstrip("/")
# A job still unfinished after this many seconds fails (and its hold is released).
STUDIO_JOB_DEADLINE = env_int("STUDIO_JOB_DEADLINE", 15 * 60)
# Seconds to wait for a gateway's connection, and for its answer. An anyfast (sync) call keeps
# the connection open while it generates, which takes tens of seconds, so its read timeout is long.
STUDIO_GATEWAY_CONNECT_TIMEOUT = env_float("STUDIO_GATEWAY_CONNECT_TIMEOUT", 10.0)
STUDIO_GATEWAY_READ_TIMEOUT = env_float("STUDIO_GATEWAY_READ_TIMEOUT", 30.0)
STUDIO_SYNC_READ_TIMEOUT = env_float("STUDIO_SYNC_READ_TIMEOUT", 300.0)
# Seconds to wait for each chunk of a result image from the gateway's CDN (media.fetch).
STUDIO_DOWNLOAD_READ_TIMEOUT = env_float("STUDIO_DOWNLOAD_READ_TIMEOUT", 60.0)
# Seconds one result image may take to download in all (attempts and redirects included), so
# a link that trickles its bytes can't hold a worker: media.result_bytes.
STUDIO_DOWNLOAD_SECONDS = env_float("STUDIO_DOWNLOAD_SECONDS", 120.0)
# Submits that fail with a transient error (never one that may have reached the gateway) are
# tried this many times in all, with exponential backoff and full jitter between base and max.
STUDIO_SUBMIT_ATTEMPTS = env_int("STUDIO_SUBMIT_ATTEMPTS", 4)
STUDIO_RETRY_BASE_SECONDS = env_float("STUDIO_RETRY_BASE_SECONDS", 2.0)
STUDIO_RETRY_MAX_SECONDS = env_float("STUDIO_RETRY_MAX_SECONDS", 60.0)
# Status polls are scheduled, not ticked: each running job is asked the moment its result is
# expected (the gateway's estimate or progress, else how long the model took lately; DEFAULT
# with no history) plus MARGIN, then every AFTER seconds; never sooner than MIN from the last
# poll, never later than MAX (an estimate can be wrong).
STUDIO_POLL_MIN_SECONDS = env_float("STUDIO_POLL_MIN_SECONDS", 0.5)
STUDIO_POLL_MAX_SECONDS = env_float("STUDIO_POLL_MAX_SECONDS", 30.0)
STUDIO_POLL_DEFAULT_SECONDS = env_float("STUDIO_POLL_DEFAULT_SECONDS", 5.0)
STUDIO_POLL_MARGIN_SECONDS = env_float("STUDIO_POLL_MARGIN_SECONDS", 0.25)
STUDIO_POLL_AFTER_SECONDS = env_float("STUDIO_POLL_AFTER_SECONDS", 1.0)
# The lane (studio/lane.py): one task sends and polls on threads. It takes a new job
# within PICKUP seconds, hands over to a fresh task after LANE seconds, stops after IDLE
# seconds with nothing to do. At most CONCURRENCY calls at once per gateway (a sync generation
# holds one for its whole length). Downloads are tasks, PARALLEL images of a job at once; the
# jobs a lane pass saw complete go to tasks of up to JOBS_PER_TASK jobs, downloaded side by side.
STUDIO_LANE_SECONDS = env_float("STUDIO_LANE_SECONDS", 60.0)
STUDIO_LANE_IDLE_SECONDS = env_float("STUDIO_LANE_IDLE_SECONDS", 30.0)
STUDIO_LANE_PICKUP_SECONDS = env_float("STUDIO_LANE_PICKUP_SECONDS", 0.2)
STUDIO_GATEWAY_CONCURRENCY = env_int("STUDIO_GATEWAY_CONCURRENCY", 64)
STUDIO_DOWNLOAD_PARALLEL = env_int("STUDIO_DOWNLOAD_PARALLEL", 4)
STUDIO_DOWNLOAD_JOBS_PER_TASK = env_count("STUDIO_DOWNLOAD_JOBS_PER_TASK", 8)
# A thumbnail waits this long at most while other jobs' results wait for their download.
STUDIO_THUMBNAIL_GIVE_WAY_SECONDS = env_float("STUDIO_THUMBNAIL_GIVE_WAY_SECONDS", 10.0)
# A submitting or downloading job untouched this long is taken as abandoned by its worker
# (a task's timeout plus a margin, so a live worker is never overtaken).
STUDIO_STALE_SECONDS = env_int("STUDIO_STALE_SECONDS", Q_CLUSTER["timeout"] + 30)
# Liveness (studio/workers.py): every cluster's workers write its heartbeat row every
# STUDIO_HEARTBEAT_SECONDS; one silent for STUDIO_HEARTBEAT_TIMEOUT is dead, on whatever host it
# ran, and its jobs and leases are taken over. The host name is part of every worker's identity;
# set it when host names are not unique (containers) or to run two "hosts" on one machine.
STUDIO_WORKER_HOST = env_str("STUDIO_WORKER_HOST") or socket.gethostname()
STUDIO_HEARTBEAT_SECONDS = env_float("STUDIO_HEARTBEAT_SECONDS", 5.0)
STUDIO_HEARTBEAT_TIMEOUT = env_float("STUDIO_HEARTBEAT_TIMEOUT", 30.0)
if STUDIO_HEARTBEAT_SECONDS <= 0 or STUDIO_HEARTBEAT_TIMEOUT < 3 * STUDIO_HEARTBEAT_SECONDS:
    # Under three missed beats a busy but live worker would be taken for dead, and its submits
    # flagged as unconfirmed.
    raise ImproperlyConfigured(
        f"STUDIO_HEARTBEAT_TIMEOUT ({STUDIO_HEARTBEAT_TIMEOUT:g}) must be at least three times "
        f"STUDIO_HEARTBEAT_SECONDS ({STUDIO_HEARTBEAT_SECONDS:g}), which must be above 0"
    )
if ":" in STUDIO_WORKER_HOST or "/" in STUDIO_WORKER_HOST:
    # Worker identities are "host:pid/pid"; these characters would make them ambiguous.
    raise ImproperlyConfigured(f"STUDIO_WORKER_HOST may not contain ':' or '/', not {STUDIO_WORKER_HOST!r}")
# Monthly budget in CNY for a user without one set in the admin; empty means no limit.
STUDIO_DEFAULT_MONTHLY_BUDGET = env_str("STUDIO_DEFAULT_MONTHLY_BUDGET", "100.00")

# One JSON object per log line (studio/logs.py) instead of plain text, for a log store to index.
STUDIO_LOG_JSON = env_bool("STUDIO_LOG_JSON", False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "studio.logs.JsonFormatter"},
        "request": {
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s path=%(path)s user=%(user_id)s",
        },
    },
    "filters": {"request_context": {"()": "studio.headers.RequestContextFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json" if STUDIO_LOG_JSON else "plain"},
        "requests": {
            "class": "logging.StreamHandler", "formatter": "request", "filters": ["request_context"],
        },
    },
    "loggers": {
        # Server errors, with their traceback, in every configuration (Django's default logs them
        # to the console only under DEBUG). Not propagated, so DEBUG doesn't print them twice.
        "django.request": {"handlers": ["requests"], "level": "ERROR", "propagate": False},
        "studio": {"handlers": ["console"], "level": env_str("STUDIO_LOG_LEVEL", "INFO")},
        "django_q": {"handlers": ["console"], "level": "WARNING"},
    },
}
