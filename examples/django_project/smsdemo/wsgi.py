"""WSGI entry point (gunicorn smsdemo.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsdemo.settings")
application = get_wsgi_application()
