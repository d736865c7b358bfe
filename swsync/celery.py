"""Celery integration: send through swsync from many worker processes, never twice per key.

Needs the ``celery`` extra (``pip install "swsync[celery]"``: Celery and redis-py);
nothing else in swsync imports either.

``configure(app, ...)`` gives each worker process its own connected
:class:`~swsync.RelayClient` and registers the task ``swsync.send_message``.
Each send is guarded by a *send record* in Redis keyed by the task's ``key``: the
task claims the key (``SET NX``) before sending and stores the outcome after, so a
redelivered or retried task never sends a key twice. Error policy:

* provably not sent (``RateLimited``, ``RedisUnavailable``, not connected): the
  claim is released and Celery retries the task with exponential backoff;
* refused (bad arguments, opted out, refused by SignalWire): the task fails with
  :class:`SendRefused` (naming the original error);
* outcome unknown (the connection was lost after the request was written, or a
  worker died between claiming and recording): never retried; the result's
  ``outcome`` is ``"unknown"``.

The inbound side (:class:`InboundForwarder`, :func:`listen`) hands each inbound
message to a Celery task and acknowledges the RELAY event only after the task is
enqueued, deduplicating by message id. See docs/scaling.md.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._redis_limiter import redact_url
from .errors import (
    ConfigurationError,
    ConnectionClosedError,
    RateLimited,
    RedisUnavailable,
    RelayError,
    SwsyncError,
    WaitTimeout,
)

if TYPE_CHECKING:
    from .relay import Message, RelayClient

__all__ = [
    "InboundForwarder",
    "InboundInFlight",
    "InboundNotAcknowledged",
    "SEND_TASK",
    "SendRefused",
    "check_task",
    "client",
    "configure",
    "inbound_payload",
    "listen",
    "load_app",
]

logger = logging.getLogger("swsync.celery")

SEND_TASK = "swsync.send_message"
RECORD_PREFIX = "swsync:send:"
INBOUND_PREFIX = "swsync:inbound:"
DEFAULT_RECORD_TTL = 7 * 24 * 3600.0
_MAX_KEY = 256

# Returns the current record (the caller does not own the key) or false after
# storing ARGV[1] as the claim. One script: no race between two claimers.
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# Deletes the key only if it still holds exactly this claim.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _Records:
    """Send records and inbound claims in Redis; every failure is a ``RedisUnavailable``."""

    def __init__(
        self, url: str, ttl: float, *, what: str = "send records", consequence: str = "nothing was sent"
    ) -> None:
        import redis

        self.url = url
        self.what = what  # named in RedisUnavailable's text, with what the failure means
        self.consequence = consequence
        self.ttl_ms = int(ttl * 1000)
        self._redis = redis.Redis.from_url(
            url, socket_timeout=5.0, socket_connect_timeout=5.0, health_check_interval=30
        )
        self._claim = self._redis.register_script(_CLAIM)
        self._release = self._redis.register_script(_RELEASE)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import redis

        try:
            return fn()
        except redis.exceptions.RedisError as exc:
            where = redact_url(self.url)
            raise RedisUnavailable(
                f"{self.what} unavailable: Redis at {where} failed to {what} ({exc}); {self.consequence}", url=where
            ) from exc

    def ping(self) -> None:
        """Raise ``RedisUnavailable`` unless the server answers."""
        self._call("answer a ping", self._redis.ping)

    def claim(self, key: str, value: str, ttl_ms: int | None = None) -> str | None:
        """Store ``value`` under ``key`` unless present; return the present value, or None if claimed."""
        current = self._call("claim a key", lambda: self._claim(keys=[key], args=[value, ttl_ms or self.ttl_ms]))
        if current is None:
            return None
        return current.decode() if isinstance(current, bytes) else str(current)

    def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        value = self._call("read a record", lambda: self._redis.get(key))
        return value.decode() if isinstance(value, bytes) else value

    def save(self, key: str, value: str, ttl_ms: int | None = None) -> None:
        """Overwrite ``key`` with ``value`` (the record's TTL starts again)."""
        self._call("store an outcome", lambda: self._redis.set(key, value, px=ttl_ms or self.ttl_ms))

    def release(self, key: str, value: str) -> None:
        """Delete ``key`` if it still holds ``value`` (our claim)."""
        self._call("release a claim", lambda: self._release(keys=[key], args=[value]))

    def close(self) -> None:
        self._redis.close()


class _Runtime:
    """The configuration and per-process objects; one per process (module global)."""

    def __init__(
        self,
        app: Any,
        redis_url: str | None,
        relay_options: dict[str, Any],
        policy: dict[str, float],
        records_text: tuple[str, str] | None = None,
    ) -> None:
        self.app = app
        self.records_text = records_text or ("send records", "nothing was sent")
        self.redis_url = redis_url
        self.relay_options = relay_options
        self.policy = policy
        # Guards client/records creation and replacement; never held while connecting.
        self.lock = threading.Lock()
        self.client: RelayClient | None = None
        self.records: _Records | None = None
        self.pid = os.getpid()

    def records_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        broker = str(self.app.conf.broker_url or "")
        if broker.startswith(("redis://", "rediss://", "unix://")):
            return broker
        raise ConfigurationError(
            "swsync.celery needs Redis for its send records: pass configure(app, redis_url=...) "
            "(the broker is not Redis)"
        )

    def get_records(self) -> _Records:
        with self.lock:
            if self.records is None:
                what, consequence = self.records_text
                self.records = _Records(
                    self.records_url(), self.policy["record_ttl"], what=what, consequence=consequence
                )
            return self.records


_runtime: _Runtime | None = None


def _current() -> _Runtime:
    runtime = _runtime
    if runtime is None:
        raise ConfigurationError("swsync.celery.configure(app) was not called in this process")
    return runtime


def configure(
    app: Any,
    *,
    redis_url: str | None = None,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    retry_backoff_max: float = 60.0,
    record_ttl: float = DEFAULT_RECORD_TTL,
    **relay_options: Any,
) -> Any:
    """Set up ``app`` to send through swsync; return the registered ``swsync.send_message`` task.

    Each worker process gets its own :class:`~swsync.RelayClient` built from
    ``relay_options`` (credentials default to the ``SIGNALWIRE_*`` variables),
    connected when the process starts (``worker_process_init``: prefork children
    connect after the fork; the solo pool likewise) or on first use (threads,
    gevent, eventlet pools), and disconnected at shutdown. Nothing connects at
    import or in processes that only enqueue tasks.

    Args:
        app: the Celery application.
        redis_url: where send records live (default: the app's broker URL when it is Redis).
        max_retries: retries of a send that provably did not leave, before the task fails.
        retry_backoff: first retry delay in seconds; doubled per retry, jittered.
        retry_backoff_max: upper bound of a retry delay in seconds.
        record_ttl: seconds a key's send record is kept (a key is never sent twice within it).
        **relay_options: keyword arguments for ``RelayClient`` (``contexts``, ``rate_limit``, ...).

    Returns:
        The ``swsync.send_message`` task.
    """
    global _runtime
    from celery import signals  # type: ignore[import-untyped]

    if redis_url is not None and not str(redis_url).startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError("redis_url must be a redis://, rediss:// or unix:// URL")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError("max_retries must be an int >= 0")
    for name, value in (
        ("retry_backoff", retry_backoff),
        ("retry_backoff_max", retry_backoff_max),
        ("record_ttl", record_ttl),
    ):
        if not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number of seconds")
    policy = {
        "max_retries": max_retries,
        "retry_backoff": float(retry_backoff),
        "retry_backoff_max": float(retry_backoff_max),
        "record_ttl": float(record_ttl),
    }
    options = dict(relay_options)
    if options.get("rate_limit") is not None:
        options["rate_limit"] = _ClaimAfterAdmission(options["rate_limit"])
    _runtime = _Runtime(app, redis_url, options, policy)
    signals.worker_process_init.connect(_on_process_init, weak=False, dispatch_uid="swsync-init")
    signals.worker_process_shutdown.connect(_on_shutdown, weak=False, dispatch_uid="swsync-pshutdown")
    signals.worker_shutdown.connect(_on_shutdown, weak=False, dispatch_uid="swsync-shutdown")
    return app.task(name=SEND_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=max_retries)(
        _send_message_task
    )


def client() -> RelayClient:
    """This process's connected :class:`~swsync.RelayClient` (connecting it if needed).

    For your own tasks in a worker configured with :func:`configure`. While the
    client is reconnecting by itself it is returned as is (sends wait for the
    reconnect, up to its ``queue_timeout``).

    Raises:
        ConfigurationError: ``configure(app)`` was not called in this process.
        ConnectionClosedError: the RELAY server cannot be reached (nothing was sent).
    """
    runtime = _current()
    with runtime.lock:
        if runtime.pid != os.getpid():  # a fork the signals did not announce
            runtime.client, runtime.records, runtime.pid = None, None, os.getpid()
        relay = runtime.client
        if relay is None:
            from .relay import RelayClient

            relay = runtime.client = RelayClient(**runtime.relay_options)
    if not relay.connected:
        relay.connect()  # a no-op while it reconnects by itself
    return relay


def _on_process_init(**_: Any) -> None:
    try:
        client()
    except Exception:  # the first task will try again; a worker must still start
        logger.exception("swsync.celery: could not connect the RELAY client at process start")


def _on_shutdown(**_: Any) -> None:
    runtime = _runtime
    if runtime is None:
        return
    with runtime.lock:
        relay, runtime.client = runtime.client, None
        records, runtime.records = runtime.records, None
    if relay is not None:
        relay.disconnect()
    if records is not None:
        records.close()


# ------------------------------------------------------------------- the send task


def _result(
    key: str,
    outcome: str,
    message: Message | None = None,
    *,
    state: str | None = None,
    reason: str | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    if message is not None:
        message_id, state = message.message_id, message.state
        reason = reason if reason is not None else message.reason
    return {"key": key, "message_id": message_id, "state": state, "reason": reason, "outcome": outcome}


def _recorded(key: str, raw: str) -> dict[str, Any]:
    """What a task whose key is already taken returns: the record, or an 'unknown' result."""
    try:
        record = json.loads(raw)
    except ValueError:
        record = {}
    if isinstance(record, dict) and record.get("outcome") not in (None, "claimed"):
        return {name: record.get(name) for name in ("key", "message_id", "state", "reason", "outcome")}
    holder = record.get("task_id") if isinstance(record, dict) else None
    return _result(
        key,
        "unknown",
        reason=(
            f"an earlier attempt (task {holder}) claimed this key and recorded no outcome; "
            "it may have been sent, so it is not sent again"
        ),
    )


def _send_message_task(
    task: Any,
    to_number: str,
    from_number: str,
    body: str | None = None,
    *,
    media: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    context: str | None = None,
    region: str | None = None,
    wait: bool = False,
    timeout: float | None = 30.0,
    key: str | None = None,
) -> dict[str, Any]:
    """Send one message through this worker's RelayClient, at most once per ``key``.

    Takes ``RelayClient.send_message``'s arguments plus ``wait`` (wait for the
    final state), ``timeout`` (seconds for that wait) and ``key`` (default: the
    task id). Returns ``{"key", "message_id", "state", "reason", "outcome"}``.
    """
    key = key if key is not None else task.request.id
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
        raise ValueError(f"key must be a non-empty string of at most {_MAX_KEY} characters")
    attempt = _Attempt(task, key)
    _local.claim = attempt.claim
    try:
        records = attempt.records = attempt.runtime.get_records()
        existing = records.get(attempt.record_key)  # a key already taken spends no pacing slot
        if existing is not None:
            return _recorded(key, existing)
        relay = client()
        if not isinstance(relay.rate_limit, _ClaimAfterAdmission):
            attempt.claim()  # no pacing wait to get through first: claim now
        message = relay.send_message(
            to_number, from_number, body, media=media, tags=tags, context=context, region=region
        )
    except _KeyTaken as taken:
        logger.info("key %r was already claimed; not sending it again", key)
        return _recorded(key, taken.record)
    except Exception as exc:
        return _after_send_error(attempt, exc)
    finally:
        _local.claim = None
    result = _result(key, "accepted", message)
    _save(records, attempt.record_key, result)
    if wait:
        result = _wait(message, key, timeout)
        _save(records, attempt.record_key, result)
    return result


class _KeyTaken(Exception):
    """Raised inside ``send_message`` (from the rate limit) when another attempt holds the key."""

    def __init__(self, record: str) -> None:
        super().__init__("key already claimed")
        self.record = record


class _Attempt:
    """One run of ``swsync.send_message``: its key's record, and whether it holds the claim.

    The claim is taken right before the message can be written: after the pacing
    wait (by :class:`_ClaimAfterAdmission`) or, without pacing, just before
    ``send_message``. So while ``claimed`` is False nothing can have been sent.
    """

    def __init__(self, task: Any, key: str) -> None:
        self.task = task
        self.key = key
        self.runtime = _current()
        self.record_key = RECORD_PREFIX + key
        self.value = json.dumps(
            {"outcome": "claimed", "task_id": task.request.id, "claim": uuid.uuid4().hex, "at": time.time()}
        )
        self.records: _Records | None = None
        self.claimed = False

    def claim(self) -> None:
        assert self.records is not None
        found = self.records.claim(self.record_key, self.value)
        if found is not None:
            raise _KeyTaken(found)
        self.claimed = True


class _ClaimAfterAdmission:
    """The worker clients' rate limit: inside ``swsync.send_message`` the key is claimed
    right after the send is admitted.

    Claiming after the pacing wait, not before it, means a worker that dies while its
    sends wait for their slots leaves no key in doubt: only a send between its claim
    and SignalWire's answer (one round trip) can end "unknown". Elsewhere (your own
    tasks using :func:`client`) it is the plain limit. Attributes read through to it.
    """

    def __init__(self, limit: Any) -> None:
        self.limit = limit

    def acquire(self, *, from_number: str, body: str | None, media: Sequence[str] = (), account: str = "") -> None:
        self.limit.acquire(from_number=from_number, body=body, media=media, account=account)
        claim = getattr(_local, "claim", None)
        if claim is not None:
            claim()

    def __getattr__(self, name: str) -> Any:
        if name == "limit":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.limit, name)

    def __repr__(self) -> str:
        return repr(self.limit)


# The running send task's claim (its thread only): _ClaimAfterAdmission calls it.
_local = threading.local()


def _after_send_error(attempt: _Attempt, exc: Exception) -> dict[str, Any]:
    key, records = attempt.key, attempt.records
    sent = getattr(exc, "may_have_been_sent", True)
    if (
        attempt.claimed
        and records is not None
        and (
            isinstance(exc, WaitTimeout)
            or (isinstance(exc, ConnectionClosedError) and sent)
            or not isinstance(exc, (ValueError, TypeError, RelayError, RateLimited, ConnectionClosedError))
        )
    ):
        # Written to the socket (or failed in a way we cannot classify): it may have
        # been sent. Record that, never retry it.
        result = _result(key, "unknown", reason=f"{type(exc).__name__}: {exc}")
        _save(records, attempt.record_key, result)
        logger.warning("key %r: outcome unknown (%s); not retried", key, exc)
        return result
    if attempt.claimed and records is not None:
        try:
            records.release(attempt.record_key, attempt.value)
        except RedisUnavailable:
            logger.warning("key %r: could not release its claim; a retry will report it unknown", key)
    transient = (
        isinstance(exc, RateLimited)
        or (isinstance(exc, ConnectionClosedError) and not sent)
        or (isinstance(exc, RelayError) and (exc.code == 429 or exc.code >= 500))
    )
    if not transient:  # refused for good (bad arguments, opted out, refused): nothing was sent
        raise SendRefused(type(exc).__name__, str(exc)) from exc
    raise _retry(attempt.task, attempt.runtime, exc) from exc


class SendRefused(SwsyncError):
    """How ``swsync.send_message`` fails when the send was refused for good; nothing was sent.

    ``error`` names the original error (``"RelayError"``, ``"OptedOutError"``,
    ``"ValueError"``...) and ``text`` is its message; the original is the
    ``__cause__`` (in the task's traceback). Built from two strings, so Celery's
    JSON result backend rebuilds it as itself in a process that imported
    ``swsync.celery`` (most swsync errors take other arguments, and Celery would
    show a plain ``Exception``).
    """

    may_have_been_sent = False

    def __init__(self, error: str, text: str) -> None:
        super().__init__(error, text)
        self.error = error
        self.text = text

    def __str__(self) -> str:
        return f"{self.error}: {self.text}"


def _retry(task: Any, runtime: _Runtime, exc: Exception) -> Exception:
    policy = runtime.policy
    delay = min(policy["retry_backoff_max"], policy["retry_backoff"] * 2**task.request.retries)
    countdown = delay * random.uniform(0.5, 1.0)
    if isinstance(exc, RateLimited) and exc.retry_after:
        countdown = max(countdown, exc.retry_after)
    logger.info("not sent (%s); retry %d in %.1f s", exc, task.request.retries + 1, countdown)
    retried: Exception = task.retry(exc=exc, countdown=countdown, max_retries=int(policy["max_retries"]))
    return retried


def _wait(message: Message, key: str, timeout: float | None) -> dict[str, Any]:
    try:
        message.wait(timeout)
    except WaitTimeout:
        return _result(key, "accepted", message, reason=f"no final state within {timeout} s")
    except ConnectionClosedError as exc:  # OutcomeUnknownError: accepted, outcome lost
        return _result(key, "unknown", message, reason=str(exc))
    return _result(key, message.state, message)


def _save(records: _Records, record_key: str, result: Mapping[str, Any]) -> None:
    try:
        records.save(record_key, json.dumps(result))
    except RedisUnavailable:
        # The claim stays: a redelivery reports "unknown", never sends again.
        logger.warning("could not record the outcome of %s: %s", record_key, result)


# ------------------------------------------------------------------- inbound


def inbound_payload(message: Message) -> dict[str, Any]:
    """The JSON-serializable dict an inbound message is handed to its Celery task as."""
    from .relay.message import message_fields

    return message_fields(message)


def load_app(spec: str) -> Any:
    """Import a Celery app named ``"pkg.module:app"`` (or ``"pkg.module"`` holding ``app``)."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigurationError(f"--celery-app must look like 'pkg.module:app', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import the Celery app module {module_name!r}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if app is None or not hasattr(app, "send_task"):
        raise ConfigurationError(f"{spec!r} is not a Celery app")
    return app


def check_task(app: Any, task: str) -> None:
    """Raise ``ConfigurationError`` unless ``app`` knows the task named ``task``.

    A name the workers do not know is worse than an error: the listener would
    enqueue and acknowledge each message, and the worker would log "Received
    unregistered task" and drop it. The app's task modules are imported first
    (``imports``/``include`` settings and autodiscovery, as a worker does), then,
    if the name is still unknown, the module its dotted name points to.
    """
    import importlib

    app.loader.import_default_modules()
    if task in app.tasks:
        return
    module = task.rpartition(".")[0]
    if module:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
        if task in app.tasks:
            return
    known = sorted(name for name in app.tasks if not name.startswith("celery."))
    raise ConfigurationError(
        f"task {task!r} is not registered in the Celery app {getattr(app, 'main', None) or app!s} "
        f"(its tasks: {', '.join(known) or 'none'}); a worker would drop every message sent to it"
    )


class InboundForwarder:
    """An ``on_message`` handler that hands each inbound message to a Celery task, once.

    Register it with ``client.on_message(forwarder, ack_after=True)`` (or use
    :func:`listen`): the RELAY event is acknowledged only after the task is in the
    broker. Each message id is claimed in Redis (``SET NX``) before the task is
    sent, so a redelivered message (after a reconnect, or to another listener)
    is enqueued once; if sending the task fails the claim is released and the
    event is left un-acknowledged for the server to deliver again. The task gets
    one argument, :func:`inbound_payload`'s dict; its Celery task id is
    ``swsync-inbound-<message id>``. Thread-safe.

    When Redis fails, the message is left un-acknowledged, one line is logged
    (no traceback), ``failure`` is set to the ``RedisUnavailable`` and ``on_failure``
    (if given) is called once, on its own thread: :func:`listen` and ``swsync
    listen`` use it to disconnect, so the server gives the context's messages to
    listeners that can hand them on. Call :meth:`check` before connecting.

    Args:
        app: the Celery app (or ``"pkg.module:app"``).
        task: the name of the task to send each message to.
        redis_url: where the message-id claims live (default: the broker URL when it is Redis).
        dedup_ttl: seconds a handled message id is remembered.
        claim_ttl: seconds a claim may stay unconfirmed (a listener dying mid-hand-off).
        task_options: extra ``send_task`` options (``queue``, ``priority``, ...).
        on_failure: called once (thread ``swsync-celery-stop``) when Redis first fails.
    """

    def __init__(
        self,
        app: Any,
        task: str,
        *,
        redis_url: str | None = None,
        dedup_ttl: float = DEFAULT_RECORD_TTL,
        claim_ttl: float = 60.0,
        task_options: Mapping[str, Any] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        if isinstance(app, str):
            app = load_app(app)
        if not isinstance(task, str) or not task:
            raise ValueError("task must be a task name")
        self.app = app
        self.task = task
        self._runtime = _Runtime(
            app,
            redis_url,
            {},
            {"record_ttl": float(dedup_ttl)},
            ("inbound claims", "the message was not acknowledged and will be redelivered"),
        )
        self._claim_ms = int(claim_ttl * 1000)
        self._options = dict(task_options or {})
        self._me = f"{socket.gethostname()}:{os.getpid()}"
        self.on_failure = on_failure
        self.failure: RedisUnavailable | None = None
        self._lock = threading.Lock()  # guards failure and the stop thread
        self._stopper: threading.Thread | None = None

    def check(self) -> None:
        """Raise ``ConfigurationError`` (unknown task, no Redis URL) or ``RedisUnavailable``.

        Checks that the task is registered in the app (:func:`check_task`) and that
        Redis answers, so a listener that could not hand messages on never starts.
        """
        check_task(self.app, self.task)
        records = self._runtime.get_records()
        try:
            records.ping()
        except RedisUnavailable as exc:
            raise RedisUnavailable(
                f"inbound claims unavailable: Redis at {exc.url} did not answer ({exc.__cause__}); not listening",
                url=exc.url,
            ) from exc.__cause__

    def __call__(self, message: Message) -> None:
        """Enqueue ``message`` unless its id was enqueued already; raise to leave it un-ACKed."""
        try:
            self._hand_off(message)
        except RedisUnavailable as exc:
            self._failed(message, exc)
            raise InboundNotAcknowledged(str(exc)) from None

    def _hand_off(self, message: Message) -> None:
        records = self._runtime.get_records()
        key = INBOUND_PREFIX + message.message_id
        claim = json.dumps({"state": "enqueuing", "by": self._me, "at": time.time()})
        existing = records.claim(key, claim, ttl_ms=self._claim_ms)
        if existing is not None:
            if '"enqueued"' in existing:
                logger.info("inbound %s was handed on already; acknowledging the copy", message.message_id)
                return
            raise InboundInFlight(
                f"inbound {message.message_id} is being handed on by another listener "
                f"({existing}); leaving this copy un-acknowledged"
            )
        try:
            self.app.send_task(
                self.task,
                args=[inbound_payload(message)],
                task_id=f"swsync-inbound-{message.message_id}",
                **self._options,
            )
        except Exception:
            records.release(key, claim)
            raise
        records.save(key, json.dumps({"state": "enqueued", "by": self._me, "at": time.time()}))

    def _failed(self, message: Message, exc: RedisUnavailable) -> None:
        logger.error("inbound %s: %s", message.message_id, exc)
        with self._lock:
            if self.failure is not None:
                return
            self.failure = exc
            if self.on_failure is not None:
                logger.error("stopping: no inbound message can be handed on without Redis")
                self._stopper = threading.Thread(target=self.on_failure, name="swsync-celery-stop")
                self._stopper.start()

    def join(self, timeout: float | None = 30.0) -> None:
        """Wait for the ``on_failure`` thread, if one was started."""
        with self._lock:
            stopper = self._stopper
        if stopper is not None:
            stopper.join(timeout)


class InboundInFlight(SwsyncError):
    """Another listener claimed this inbound message and has not confirmed its hand-off yet."""


class InboundNotAcknowledged(SwsyncError):
    """Raised by :class:`InboundForwarder` for a message it could not claim (Redis failed).

    Already logged as one line, so the RELAY client does not print its traceback
    (``reported`` is True); the message stays un-acknowledged.
    """

    reported = True


def listen(
    app: Any,
    task: str,
    *,
    redis_url: str | None = None,
    task_options: Mapping[str, Any] | None = None,
    **relay_options: Any,
) -> None:
    """Receive inbound messages and hand each to Celery task ``task``; block until SIGTERM/Ctrl-C.

    Run as many listener processes on the same contexts as you need: SignalWire
    gives each inbound message to one of them, and the message-id claims make a
    redelivered copy run the task once. ``relay_options`` go to ``RelayClient``
    (``contexts``, credentials, ...). See :class:`InboundForwarder`.

    Raises:
        ConfigurationError: ``task`` is not registered in ``app`` (checked before connecting).
        RedisUnavailable: Redis did not answer at start (nothing was received), or it
            failed later: the listener then disconnected, leaving that message
            un-acknowledged for the server to deliver again.
    """
    from .relay import RelayClient

    forwarder = InboundForwarder(app, task, redis_url=redis_url, task_options=task_options)
    forwarder.check()
    relay = RelayClient(**relay_options)
    forwarder.on_failure = relay.disconnect
    relay.on_message(forwarder, ack_after=True)
    relay.run()
    forwarder.join()
    if forwarder.failure is not None:
        raise forwarder.failure
