"""Settings for the swsync Django webhook example. No database: nothing needs one."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Validates every view under SWSYNC_WEBHOOK_PREFIX; must come before CSRF.
    "swsync.django.WebhookMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "smsdemo.urls"
WSGI_APPLICATION = "smsdemo.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# --- swsync -----------------------------------------------------------------
SWSYNC_WEBHOOK_PREFIX = "/signalwire/"
# The project's Signing Key (not the API token). swsync also reads it from the
# environment variable of the same name, which is what `swsync emulator` prints.
SIGNALWIRE_SIGNING_KEY = os.environ.get("SIGNALWIRE_SIGNING_KEY")
# Opted-out numbers (STOP/START), shared with any sender that opens the same file.
SWSYNC_OPT_OUTS = os.environ.get("OPT_OUTS") or str(BASE_DIR / "optouts.db")
# Behind a proxy or tunnel, either name the public URL the provider calls...
SWSYNC_PUBLIC_URL = os.environ.get("PUBLIC_URL") or None
# ...or trust the proxy's headers the Django way:
# SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# USE_X_FORWARDED_HOST = True
# ...or with swsync's own count of trusted proxies (Werkzeug ProxyFix semantics):
# SWSYNC_TRUSTED_PROXIES = 1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "smsdemo": {"handlers": ["console"], "level": "INFO"},
        "swsync": {"handlers": ["console"], "level": "INFO"},
    },
}
