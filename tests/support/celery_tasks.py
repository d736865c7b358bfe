"""A task module no Celery app imports (tests of ``swsync.celery.check_task``)."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="tests.support.celery_tasks.handled")
def handled(message: dict[str, Any]) -> None:
    """Does nothing."""
