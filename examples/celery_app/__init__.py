"""A runnable Celery deployment of swsync (see docs/scaling.md, "Run it locally")."""
