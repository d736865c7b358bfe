"""Tasks: what to do with each inbound message (``swsync listen --celery-app ... --task ...``)."""

from __future__ import annotations

import logging
from typing import Any

from .app import app

logger = logging.getLogger(__name__)


@app.task(name="examples.celery_app.tasks.handle_inbound", acks_late=True)
def handle_inbound(message: dict[str, Any]) -> dict[str, Any]:
    """Answer each inbound message, sent through the shared limit and at most once.

    ``message`` is ``swsync.celery.inbound_payload``'s dict. The reply goes through
    the ``swsync.send_message`` task keyed by the inbound id, so a handler that runs
    twice (a worker died after sending) still replies once.
    """
    logger.info("inbound %s from %s: %r", message["message_id"], message["from_number"], message["body"])
    reply = app.send_task(
        "swsync.send_message",
        args=[message["from_number"], message["to_number"], f"Got it: {message['body'] or '(media)'}"],
        kwargs={"key": f"reply:{message['message_id']}"},
    )
    return {"message_id": message["message_id"], "reply_task": reply.id}
