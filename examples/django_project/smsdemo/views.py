"""The webhook views. swsync.django.WebhookMiddleware has already checked the
signature, dropped retries and STOP messages, and typed the webhook."""

from __future__ import annotations

import logging

from django.http import HttpRequest

from swsync.cxml import MessagingResponse
from swsync.optouts import Keyword, keyword
from swsync.webhooks import InboundMessage, StatusCallback

logger = logging.getLogger("smsdemo")

HELP_TEXT = "swsync demo: we answer every message. Reply STOP to opt out. Msg&data rates may apply."


def sms(request: HttpRequest, message: InboundMessage) -> MessagingResponse:
    """An inbound message: reply with cXML. Status callbacks never get here."""
    logger.info("inbound %s from %s: %r", message.message_sid, message.from_, message.body)
    if keyword(message.body) is Keyword.HELP:
        return MessagingResponse().message(HELP_TEXT)
    return MessagingResponse().message(f"Thanks, we got: {message.body or 'your media'}"[:1600])


def status(request: HttpRequest, callback: StatusCallback) -> None:
    """A status callback: log it. Returning None answers an empty <Response/>."""
    logger.info("status %s %s", callback.message_sid, callback.message_status)
