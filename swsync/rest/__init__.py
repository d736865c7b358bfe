"""The cXML (LaML) compatibility REST API for messages and their media.

::

    from swsync.rest import RestClient

    with RestClient() as rest:      # SIGNALWIRE_PROJECT_ID / _API_TOKEN / _SPACE
        m = rest.messages.create(to="+15557654321", from_="+15551234567", body="Hi")
        for record in rest.messages.stream(status="delivered", page_size=1000):
            ...

Layout: :class:`RestClient` builds one transport (``_transport``: session, auth,
retries, error parsing) and hands it to ``rest.messages`` (:class:`MessageList`; the
resource constructors also take the client itself, ``MessageList(rest)``) ->
``rest.messages(sid)`` (:class:`MessageContext`) -> :class:`MessageRecord`; ``.media``
works the same way one level down, and :class:`Page` walks list responses. Records
(``_record``) are typed views of the JSON, converted lazily (``_fields``). Importing
this module imports ``requests``; ``import swsync`` alone does not.
"""

from __future__ import annotations

from .client import RestClient, RestConnectionError, RestTimeout
from .media import MediaContext, MediaList, MediaRecord
from .messages import MessageContext, MessageList, MessageRecord, MessageStatus
from .page import Page

__all__ = [
    "MediaContext",
    "MediaList",
    "MediaRecord",
    "MessageContext",
    "MessageList",
    "MessageRecord",
    "MessageStatus",
    "Page",
    "RestClient",
    "RestConnectionError",
    "RestTimeout",
]
