"""Settings of the example app.

Everything an instance changes comes from the config file Summon writes and mounts at
SUMMON_CONFIG_FILE (docs/app-image.md, "Settings: the config file"). The module also imports
without the file, because collectstatic runs while the image is built.
"""

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import yaml

BASE_DIR = Path(__file__).resolve().parent.parent


def _summon_settings():
    path = os.environ.get("SUMMON_CONFIG_FILE")
    if not path:  # image build (collectstatic), local tools
        return {}
    with open(path) as f:
        return yaml.safe_load(f) or {}


def _flag(value):
    # spec.config keeps a bool's type; a value from an input Secret is always a string.
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _version():
    # The image's version, written by assemble.sh: the same file the static component serves.
    version = os.environ.get("SUMMON_APP_VERSION")
    if version:
        return version
    try:
        return (BASE_DIR / "static" / "version.txt").read_text().strip()
    except FileNotFoundError:
        return "dev"


SUMMON = _summon_settings()

APP_VERSION = _version()
# A pod's hostname is its name: it tells a prober which pod answered.
POD_NAME = socket.gethostname()

# Django 3.2 checks SECRET_KEY when something first uses it, so collectstatic runs without one.
SECRET_KEY = SUMMON.get("SECRET_KEY", "")
DEBUG = _flag(SUMMON.get("DEBUG", False))
ALLOWED_HOSTS = [h.strip() for h in str(SUMMON.get("ALLOWED_HOSTS", "")).split(",") if h.strip()]

INSTALLED_APPS = [
    # First, so that its runworker command wins over Channels' own.
    "summon_platform",
    "django.contrib.staticfiles",
    "channels",
    "ticks",
    "notes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "summon_platform.urls"
WSGI_APPLICATION = "summon_platform.wsgi.application"
ASGI_APPLICATION = "summon_platform.asgi.application"

DATABASES = {}
if "DATABASE_URL" in SUMMON:
    DATABASES["default"] = dj_database_url.parse(SUMMON["DATABASE_URL"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The Channels layer is the instance's own Redis (REDIS_CHANNELS_URL), never the cache's: the
# cache evicts, the layer must not. Django 3.2 has no Redis cache backend of its own (4.0 added
# one) and this app caches nothing, so REDIS_CACHE_URL goes unread here.
if "REDIS_CHANNELS_URL" in SUMMON:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [SUMMON["REDIS_CHANNELS_URL"]]},
        }
    }

# Celery reads the CELERY_* settings (summon_platform/celery.py). A task is acknowledged when it
# has run, not when it is received, so a worker that dies mid-task leaves it to another; the
# tick task is idempotent per slot (ticks/tasks.py).
CELERY_BROKER_URL = SUMMON.get("CELERY_BROKER_URL")
if not CELERY_BROKER_URL and "REDIS_CHANNELS_URL" in SUMMON:
    # No RabbitMQ (Summon's provider is off): the example falls back to its Channels Redis, which
    # never evicts, in a database of its own.
    CELERY_BROKER_URL = urlsplit(SUMMON["REDIS_CHANNELS_URL"])._replace(path="/1").geturl()
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Beat sends the tick task once per slot of TICK_SECONDS; each tick takes TICK_WORK_SECONDS, so
# that a worker told to stop has one in hand (ticks/).
TICK_SECONDS = int(SUMMON.get("TICK_SECONDS", 10))
TICK_WORK_SECONDS = float(SUMMON.get("TICK_WORK_SECONDS", 1))

USE_TZ = True
TIME_ZONE = "UTC"

# The static component's Caddy serves /static/ from /var/www (pkg/children/static.go).
STATIC_URL = "/static/"
STATIC_ROOT = "/var/www/static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Behind the Ingress's TLS; the web probes send X-Forwarded-Proto: https.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
