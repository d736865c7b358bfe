"""Opt-out keywords and the store that remembers who opted out.

A recipient who texts STOP must not get another message from you until they text
START. The keywords are the industry-standard English set: CTIA's *Messaging
Principles and Best Practices* (section 5, "Consumer opt-out",
https://www.ctia.org/the-wireless-industry/industry-commitments/messaging-interoperability-sms-mms)
names STOP, END, CANCEL, UNSUBSCRIBE and QUIT and requires HELP to be answered;
carriers and messaging providers (Twilio's "What are the supported opt-out
keywords", https://help.twilio.com/articles/223134027) add STOPALL, and START /
UNSTOP to opt back in, and INFO as a synonym of HELP. As those providers do, only a
message that is the keyword alone (any case, surrounding spaces and final
punctuation ignored) counts: "please stop calling me at 5" is a message, not an
opt-out. YES is deliberately not an opt-in keyword here: it is too often a
conversational answer.

:func:`keyword` classifies a body. An opt-out store remembers the numbers; the
webhook helpers (``swsync.flask``, ``swsync.django``) update it, and
``RelayClient(opt_outs=store)`` / ``RestClient(opt_outs=store)`` refuse to send to
an opted-out number with :class:`~swsync.errors.OptedOutError` before anything is
sent. Opt-outs are kept per recipient number for the whole account (the strictest
reading: a STOP to one of your numbers stops all of them).
"""

from __future__ import annotations

import enum
import os
import sqlite3
import threading
import time
from typing import Protocol, runtime_checkable

from . import _validate
from .errors import ConfigurationError, OptedOutError

__all__ = [
    "HELP_KEYWORDS",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "Keyword",
    "MemoryOptOutStore",
    "OptOutStore",
    "SQLiteOptOutStore",
    "as_store",
    "check_not_opted_out",
    "keyword",
]

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})


class Keyword(str, enum.Enum):
    """What an inbound message that is a single keyword asks for."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


def keyword(body: str | None) -> Keyword | None:
    """Classify an inbound message body as an opt-out, opt-in or help keyword.

    Args:
        body: the message text (``None`` for a media-only message).

    Returns:
        The :class:`Keyword`, or ``None`` when the body is anything else.
    """
    if not body:
        return None
    word = body.strip().rstrip(".!").strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_KEYWORDS:
        return Keyword.OPT_IN
    if word in HELP_KEYWORDS:
        return Keyword.HELP
    return None


@runtime_checkable
class OptOutStore(Protocol):
    """What the clients and webhook helpers need of an opt-out store.

    Implementations must be safe to call from many threads at once.
    """

    def is_opted_out(self, number: str) -> bool:
        """Whether ``number`` opted out (and has not opted back in)."""

    def opt_out(self, number: str) -> None:
        """Record that ``number`` opted out."""

    def opt_in(self, number: str) -> None:
        """Record that ``number`` opted back in."""


class MemoryOptOutStore:
    """An in-process opt-out store (tests, single-process apps that may forget).

    Thread-safe.
    """

    def __init__(self) -> None:
        # Guards _numbers.
        self._lock = threading.Lock()
        self._numbers: set[str] = set()

    def is_opted_out(self, number: str) -> bool:
        """Whether ``number`` opted out."""
        with self._lock:
            return number in self._numbers

    def opt_out(self, number: str) -> None:
        """Record that ``number`` opted out."""
        _validate.phone_number(number, "number")
        with self._lock:
            self._numbers.add(number)

    def opt_in(self, number: str) -> None:
        """Record that ``number`` opted back in."""
        with self._lock:
            self._numbers.discard(number)


class SQLiteOptOutStore:
    """The default opt-out store: one table in an SQLite file (stdlib ``sqlite3``).

    Survives restarts and can be shared by the processes of one host (a web app
    and a sending cron job) through the same file; SQLite serializes writers.

    Args:
        path: the database file (created if missing), or ``":memory:"``.
        timeout: seconds to wait for another process's write lock.

    Thread-safe: one connection, used under a lock.
    """

    def __init__(self, path: str = "swsync-optouts.db", *, timeout: float = 10.0) -> None:
        self.path = path
        # Guards _db; sqlite3 connections must not be used by two threads at once.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS swsync_opt_outs (number TEXT PRIMARY KEY, opted_out_at REAL NOT NULL)"
            )

    def __repr__(self) -> str:
        return f"SQLiteOptOutStore({self.path!r})"

    def is_opted_out(self, number: str) -> bool:
        """Whether ``number`` opted out."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM swsync_opt_outs WHERE number = ?", (number,)).fetchone()
        return row is not None

    def opt_out(self, number: str) -> None:
        """Record that ``number`` opted out (again: keeps the first time)."""
        _validate.phone_number(number, "number")
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO swsync_opt_outs (number, opted_out_at) VALUES (?, ?)",
                (number, time.time()),
            )

    def opt_in(self, number: str) -> None:
        """Record that ``number`` opted back in."""
        with self._lock:
            self._db.execute("DELETE FROM swsync_opt_outs WHERE number = ?", (number,))

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()


def as_store(value: OptOutStore | str | os.PathLike[str] | None) -> OptOutStore | None:
    """The store a client's ``opt_outs=`` argument names: a store, or an SQLite file path.

    Raises:
        ConfigurationError: ``value`` is neither.
    """
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return SQLiteOptOutStore(os.fspath(value))
    if isinstance(value, OptOutStore):
        return value
    raise ConfigurationError(
        f"opt_outs must be an opt-out store (is_opted_out/opt_out/opt_in) or an SQLite path, got {type(value).__name__}"
    )


def check_not_opted_out(store: OptOutStore | None, number: str) -> None:
    """Raise :class:`OptedOutError` if ``store`` says ``number`` opted out.

    Args:
        store: the opt-out store to honour; ``None`` checks nothing.
        number: the destination about to be sent to.

    Raises:
        OptedOutError: ``number`` opted out (nothing has been sent).
    """
    if store is not None and store.is_opted_out(number):
        raise OptedOutError(
            f"not sent: {number} opted out (texted STOP); it must text START to receive messages again",
            number=number,
        )
