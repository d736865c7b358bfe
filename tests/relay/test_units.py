"""Unit tests, without sockets, for the RELAY client's pure parts."""

from __future__ import annotations

import json
import struct
import threading
import time

import pytest

from swsync.errors import ConnectionClosedError, RelayError, WaitTimeout
from swsync.relay.dispatcher import Dispatcher
from swsync.relay.events import parse_message_fields
from swsync.relay.message import MessageTracker
from swsync.relay.rpc import PendingCall, PendingCalls, encode_request, result_error
from swsync.relay.wsframes import OP_CLOSE, OP_PING, OP_TEXT, FrameReader, FrameWriter, ProtocolError


def server_frame(payload: bytes, opcode: int = OP_TEXT, fin: bool = True) -> bytes:
    """Encode an unmasked (server-to-client) frame, independently of the decoder."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", b0, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", b0, 126, n)
    else:
        header = struct.pack("!BBQ", b0, 127, n)
    return header + payload


class TestFrameReader:
    def test_many_frames_in_one_read_and_split_across_reads(self) -> None:
        frames = [json.dumps({"n": i, "pad": "x" * (i * 37)}).encode() for i in range(200)]
        stream = b"".join(server_frame(f) for f in frames)
        reader = FrameReader()
        got: list[bytes] = []
        # Feed in awkward chunk sizes so headers and payloads split everywhere.
        for i in range(0, len(stream), 7):
            reader.feed(stream[i : i + 7])
            got.extend(p for _, p in reader.messages())
        assert got == frames

    def test_extended_lengths(self) -> None:
        for size in (125, 126, 65535, 65536, 200_000):
            reader = FrameReader()
            reader.feed(server_frame(b"a" * size))
            assert reader.messages() == [(OP_TEXT, b"a" * size)]

    def test_fragmented_message_with_interleaved_ping(self) -> None:
        reader = FrameReader()
        reader.feed(server_frame(b"hel", OP_TEXT, fin=False))
        reader.feed(server_frame(b"!", OP_PING))
        reader.feed(server_frame(b"lo", 0x0, fin=True))
        assert reader.messages() == [(OP_PING, b"!"), (OP_TEXT, b"hello")]

    def test_close_frame(self) -> None:
        reader = FrameReader()
        reader.feed(server_frame(b"\x03\xe8", OP_CLOSE))
        assert reader.messages() == [(OP_CLOSE, b"\x03\xe8")]

    @pytest.mark.parametrize(
        "raw",
        [
            bytes([0x81, 0x81]) + b"mask" + b"x",  # masked server frame
            bytes([0xC1, 0x01]) + b"x",  # RSV1 set
            bytes([0x80, 0x01]) + b"x",  # continuation without a start
            bytes([0x09, 0x01]) + b"x",  # fragmented control frame
            bytes([0x83, 0x01]) + b"x",  # reserved opcode
        ],
    )
    def test_protocol_errors(self, raw: bytes) -> None:
        reader = FrameReader()
        reader.feed(raw)
        with pytest.raises(ProtocolError):
            reader.messages()

    def test_oversized(self) -> None:
        reader = FrameReader(max_message=100)
        reader.feed(server_frame(b"a" * 101))
        with pytest.raises(ProtocolError):
            reader.messages()


def unmask_client_frames(data: bytes) -> list[bytes]:
    """Decode masked client frames with a plain byte loop (independent of the writer)."""
    out, pos = [], 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 == 0x81 and b1 & 0x80  # final text frame, masked
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            n, pos = struct.unpack("!H", data[pos : pos + 2])[0], pos + 2
        elif n == 127:
            n, pos = struct.unpack("!Q", data[pos : pos + 8])[0], pos + 8
        key, pos = data[pos : pos + 4], pos + 4
        out.append(bytes(c ^ key[i % 4] for i, c in enumerate(data[pos : pos + n])))
        pos += n
    return out


@pytest.mark.parametrize("sizes", [[0], [5], [1, 2, 3, 4, 5], [125, 126, 127, 65535, 65536, 3], [300] * 40])
def test_frame_writer_masks_each_frame_with_its_own_key(sizes: list[int]) -> None:
    payloads = [bytes((i * 7 + j) % 256 for j in range(n)) for i, n in enumerate(sizes)]
    writer = FrameWriter()
    assert unmask_client_frames(writer.frames(payloads)) == payloads
    assert unmask_client_frames(b"".join(writer.frame(p) for p in payloads)) == payloads


class TestRpc:
    def test_encode_request(self) -> None:
        frame = json.loads(encode_request("id-1", "messaging.send", {"body": "héllo"}))
        assert frame == {"jsonrpc": "2.0", "id": "id-1", "method": "messaging.send", "params": {"body": "héllo"}}

    @pytest.mark.parametrize(
        ("frame", "code"),
        [
            ({"error": {"code": -32602, "message": "bad"}}, -32602),
            ({"error": "weird"}, -1),
            ({"result": {"code": "400", "message": "Some error"}}, 400),
            ({"result": {"code": "x", "message": "?"}}, -1),
        ],
    )
    def test_errors(self, frame: dict, code: int) -> None:
        err = result_error("messaging.send", frame)
        assert isinstance(err, RelayError) and err.code == code

    @pytest.mark.parametrize(
        "frame", [{"result": {"code": "200"}}, {"result": {}}, {"result": None}, {"result": {"code": 204}}]
    )
    def test_success(self, frame: dict) -> None:
        assert result_error("messaging.send", frame) is None

    def test_connect_result_is_not_code_checked(self) -> None:
        assert result_error("signalwire.connect", {"result": {"code": "500"}}) is None

    def test_pending_calls(self) -> None:
        calls = PendingCalls()
        a, b = PendingCall("a", "m", "{}"), PendingCall("b", "m", "{}")
        assert not a.wait(0)
        a.resolve({"ok": 1})
        assert a.wait(0) and a.outcome() == {"ok": 1}
        b.fail(RelayError(1, "no"))
        assert b.wait(1)
        with pytest.raises(RelayError):
            b.outcome()
        calls.add(a)
        calls.add(b)
        b.written = True
        assert calls.pop(7) is None
        assert calls.take(lambda c: c.written) == [b]
        assert calls.pop("a") is a and len(calls) == 0


class _InlineDispatcher(Dispatcher):
    """Runs jobs immediately on the caller (the tracker's reader-side tests)."""

    def submit(self, key, fn, *args):  # type: ignore[no-untyped-def]
        fn(*args)


def state_event(mid: str, state: str, **extra: object) -> tuple[dict, dict]:
    params = {"message_id": mid, "message_state": state, **extra}
    return parse_message_fields(params), params


class TestTracker:
    def make(self, **kw: object) -> MessageTracker:
        return MessageTracker(_InlineDispatcher(), **kw)  # type: ignore[arg-type]

    def test_forward_only_and_handlers_in_order(self) -> None:
        tracker = self.make()
        done: list[str] = []
        msg = tracker.register("m1", {"to_number": "+15551230000"}, lambda e: done.append(e.message_state))
        seen: list[str] = []
        msg.on(lambda e: seen.append(e.message_state))
        for state in ("queued", "initiated", "initiated", "queued", "sent", "delivered", "failed"):
            tracker.apply_state(*state_event("m1", state, segments=2))
        assert seen == ["queued", "initiated", "sent", "delivered"]
        assert done == ["delivered"]
        assert msg.is_done and msg.state == "delivered" and msg.segments == 2
        assert msg.wait(0).message_state == "delivered"
        assert len(tracker) == 0  # nothing kept after completion

    def test_early_events_replayed_on_register(self) -> None:
        tracker = self.make()
        tracker.apply_state(*state_event("m2", "queued"))
        tracker.apply_state(*state_event("m2", "failed", reason="unreachable"))
        assert tracker.early_count == 1
        msg = tracker.register("m2", {}, None)
        assert msg.state == "failed" and msg.reason == "unreachable" and msg.is_done
        assert tracker.early_count == 0

    def test_early_buffer_bounded_and_expires(self) -> None:
        tracker = self.make(max_early=3, early_ttl=10.0)
        for i in range(5):
            tracker.apply_state(*state_event(f"x{i}", "queued"))
        assert tracker.early_count == 3
        tracker.expire(now=10**9)
        assert tracker.early_count == 0

    def test_max_tracked_evicts_oldest_with_wait_timeout(self) -> None:
        tracker = self.make(max_tracked=2)
        first = tracker.register("a", {}, None)
        tracker.register("b", {}, None)
        tracker.register("c", {}, None)
        assert len(tracker) == 2
        with pytest.raises(WaitTimeout, match="stopped tracking"):
            first.wait(5)

    def test_wait_timeout_and_many_waiters_woken(self) -> None:
        tracker = self.make()
        msg = tracker.register("w", {}, None)
        with pytest.raises(WaitTimeout):
            msg.wait(0.01)
        results: list[str] = []
        started = threading.Barrier(21)

        def waiter() -> None:
            started.wait(5)
            results.append(msg.wait(5).message_state)

        threads = [threading.Thread(target=waiter) for _ in range(20)]
        for t in threads:
            t.start()
        started.wait(5)
        # Make sure all 20 are blocked in wait() before the state arrives (no API tells).
        deadline = time.monotonic() + 10
        while True:
            with tracker.lock:
                blocked = 0 if msg._cond is None else len(msg._cond._waiters)  # type: ignore[attr-defined]
            if blocked == 20 or time.monotonic() > deadline:
                break
            time.sleep(0.001)  # sleep-ok: polling a private count that has no wait API
        assert blocked == 20
        tracker.apply_state(*state_event("w", "undelivered", reason="carrier_blocked"))
        for t in threads:
            t.join(5)
        assert results == ["undelivered"] * 20

    def test_closed_wakes_waiters(self) -> None:
        tracker = self.make()
        msg = tracker.register("z", {}, None)
        tracker.closed("bye")
        with pytest.raises(ConnectionClosedError, match="bye"):
            msg.wait(5)

    def test_hostile_fields_are_dropped(self) -> None:
        fields = parse_message_fields(
            {"message_id": 5, "body": ["x"], "media": ["ok", 3], "segments": True, "tags": ["t"], "reason": "r"}
        )
        assert fields == {"tags": ["t"], "reason": "r"}


def test_dispatcher_fifo_per_key_across_workers() -> None:
    d = Dispatcher(workers=4)
    d.start()
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()
    finished = threading.Event()

    def job(key: str, i: int) -> None:
        with lock:
            seen.setdefault(key, []).append(i)
            if sum(map(len, seen.values())) == 400:
                finished.set()

    for i in range(100):
        for key in ("a", "b", "c", "d"):
            d.submit(key, job, key, i)
    assert finished.wait(10)
    workers = d.threads
    assert len(workers) == 4
    d.stop()
    assert all(v == list(range(100)) for v in seen.values())
    assert not any(t.is_alive() for t in workers)


def test_dispatcher_survives_raising_job(caplog: pytest.LogCaptureFixture) -> None:
    d = Dispatcher()
    d.start()
    ran = threading.Event()
    d.submit("k", lambda: 1 / 0)
    d.submit("k", ran.set)
    assert ran.wait(5)
    d.stop()
    assert "raised" in caplog.text
