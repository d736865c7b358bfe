"""The send journal: an sqlite3 file recording every bulk send's key and outcome.

It is what makes ``send_many(..., journal=PATH)`` safe to rerun: a key is written
(and committed) with outcome ``sending`` *before* its frame can leave, then updated
with what happened. The schema is the user's audit trail and is documented in
docs/bulk.md; changing it needs a new ``schema_version``.

The database runs in WAL mode so other processes can read it while a batch writes
(``sqlite3 sends.db "select outcome, count(*) from sends group by 1"``), with
``synchronous=NORMAL``: a committed row survives the process being killed (the
data is in the operating system's hands); only a power loss can take back the last
commits. One connection, shared by the batch's threads. Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Journal", "JournalRow", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sends (
    key         TEXT PRIMARY KEY,
    to_number   TEXT NOT NULL,
    from_number TEXT NOT NULL,
    body        TEXT,
    media       TEXT,               -- JSON array of URLs, or NULL
    outcome     TEXT NOT NULL,      -- sending | accepted | delivered | undelivered | failed
                                    -- | unknown | not_sent
    message_id  TEXT,               -- set once SignalWire accepted the message
    state       TEXT,               -- the last message state seen
    reason      TEXT,               -- the carrier's reason for undelivered/failed
    error       TEXT,               -- why it was not sent or its outcome is unknown
    attempts    INTEGER NOT NULL DEFAULT 1,
    run_id      TEXT NOT NULL,      -- the send_many call that last touched the row
    created_at  REAL NOT NULL,      -- Unix time, seconds
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_outcome ON sends (outcome);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = "key, outcome, message_id, state, reason, error, run_id"


@dataclass(frozen=True)
class JournalRow:
    """What the journal knows of one key."""

    key: str
    outcome: str
    message_id: str | None
    state: str | None
    reason: str | None
    error: str | None
    run_id: str


class Journal:
    """The sqlite3 journal of one ``send_many`` run (see the module docstring).

    Thread-safe: every method takes the journal's lock; each write is its own
    committed transaction.
    """

    def __init__(self, path: str) -> None:
        # Guards _db; held for each statement and its commit, never across a send.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            found = self._db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
        except BaseException:
            self._db.close()
            raise
        if found is None or found[0] != str(SCHEMA_VERSION):
            self._db.close()
            raise ValueError(
                f"{path}: journal schema version {found and found[0]!r}, this swsync writes version {SCHEMA_VERSION}"
            )

    def get(self, key: str) -> JournalRow | None:
        """The row for ``key``, or ``None`` when the key was never recorded."""
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM sends WHERE key=?", (key,)).fetchone()
        return None if row is None else JournalRow(*row)

    def claim(self, key: str, fields: dict[str, Any], run_id: str, resend: frozenset[str]) -> JournalRow | None:
        """Record ``key`` as ``sending`` unless the journal says not to send it.

        Returns ``None`` when the caller must now send (the row is committed as
        ``sending`` first), else the existing row: the key was recorded earlier
        with an outcome not in ``resend``, or earlier in this same run.
        """
        now = time.time()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(f"SELECT {_COLUMNS} FROM sends WHERE key=?", (key,)).fetchone()
                if row is not None and (row[6] == run_id or row[1] not in resend):
                    db.execute("COMMIT")
                    return JournalRow(*row)
                media = json.dumps(fields["media"]) if fields.get("media") else None
                db.execute(
                    "INSERT INTO sends (key, to_number, from_number, body, media, outcome, run_id,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'sending', ?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET outcome='sending', message_id=NULL,"
                    " state=NULL, reason=NULL, error=NULL, attempts=attempts+1,"
                    " run_id=excluded.run_id, updated_at=excluded.updated_at",
                    (key, fields["to_number"], fields["from_number"], fields.get("body"), media, run_id, now, now),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return None

    def accepted(self, key: str, message_id: str) -> None:
        """SignalWire accepted ``key`` (only a row still ``sending`` changes)."""
        with self._lock:
            self._db.execute(
                "UPDATE sends SET outcome='accepted', message_id=?, state='queued', updated_at=?"
                " WHERE key=? AND outcome='sending'",
                (message_id, time.time(), key),
            )

    def finish(
        self, key: str, outcome: str, message_id: str | None, state: str | None, reason: str | None, error: str | None
    ) -> None:
        """Record the outcome of ``key``."""
        with self._lock:
            self._db.execute(
                "UPDATE sends SET outcome=?, message_id=COALESCE(?, message_id),"
                " state=COALESCE(?, state), reason=?, error=?, updated_at=? WHERE key=?",
                (outcome, message_id, state, reason, error, time.time(), key),
            )

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()
