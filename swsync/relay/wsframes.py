"""WebSocket framing on the client's I/O thread (RFC 6455).

websocket-client does the handshake and TLS, and its ``ABNF.mask`` masks outbound
payloads; this module adds a masking-key pool (one ``os.urandom`` call per 1,024
frames instead of one per frame) and decodes server frames. websocket-client's receive path
reads each frame with several small ``recv`` calls and cannot tell whether more
frames are already buffered, which costs several syscalls per frame and defeats
``select()``-driven I/O. This decoder works on 16 KiB reads instead (see
docs/design.md, "Why swsync decodes inbound frames itself").
"""

from __future__ import annotations

import os
import struct

from websocket import ABNF

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

MAX_MESSAGE = 10 * 1024 * 1024  # the size the official SDK accepts


class ProtocolError(Exception):
    """The peer broke the WebSocket framing rules; the connection must close."""


class FrameReader:
    """Turns received bytes into complete messages and control frames.

    ``feed()`` data as it arrives, then iterate ``messages()``. Fragmented text and
    binary messages are reassembled. Not thread-safe: the reader thread owns it.
    """

    __slots__ = ("_buf", "_frag_op", "_frag", "_frag_len", "_max")

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._frag_op: int | None = None
        self._frag: list[bytes] = []
        self._frag_len = 0
        self._max = max_message

    def feed(self, data: bytes) -> None:
        """Append bytes read from the socket."""
        self._buf += data

    def messages(self) -> list[tuple[int, bytes]]:
        """Return every complete ``(opcode, payload)`` now buffered, in order.

        Raises:
            ProtocolError: a masked or reserved-bit frame, an oversized message,
                a bad continuation, or a fragmented control frame.
        """
        buf = self._buf
        n = len(buf)
        pos = 0
        out: list[tuple[int, bytes]] = []
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hdr = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            if b0 & 0x70:
                raise ProtocolError("reserved bits set in a frame")
            if b1 & 0x80:
                raise ProtocolError("server frames must not be masked")
            if length > self._max:
                raise ProtocolError(f"frame of {length} bytes exceeds {self._max}")
            end = pos + hdr + length
            if end > n:
                break
            payload = bytes(buf[pos + hdr : end])
            pos = end
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode >= 0x8:
                if opcode > OP_PONG:
                    raise ProtocolError(f"reserved control opcode {opcode:#x}")
                if not fin or length > 125:
                    raise ProtocolError("invalid control frame")
                out.append((opcode, payload))
            elif fin and (opcode == OP_TEXT or opcode == OP_BINARY) and self._frag_op is None:
                out.append((opcode, payload))  # the common case: a whole message in one frame
            else:
                message = self._fragment(opcode, payload, fin)
                if message is not None:
                    out.append(message)
        if pos:
            del buf[:pos]
        return out

    def _fragment(self, opcode: int, payload: bytes, fin: int) -> tuple[int, bytes] | None:
        """Handle a frame of a fragmented message; return the message once complete."""
        if opcode == OP_CONT:
            if self._frag_op is None:
                raise ProtocolError("continuation frame without a start")
            self._append_fragment(payload)
            if not fin:
                return None
            message = (self._frag_op, b"".join(self._frag))
            self._frag_op = None
            self._frag = []
            self._frag_len = 0
            return message
        if opcode not in (OP_TEXT, OP_BINARY):
            raise ProtocolError(f"unknown opcode {opcode:#x}")
        if self._frag_op is not None:
            raise ProtocolError("new message while a fragmented one is open")
        self._frag_op = opcode  # not fin: the first fragment
        self._append_fragment(payload)
        return None

    def _append_fragment(self, payload: bytes) -> None:
        self._frag_len += len(payload)
        if self._frag_len > self._max:
            raise ProtocolError(f"message exceeds {self._max} bytes")
        self._frag.append(payload)


def _header(n: int, opcode: int) -> bytes:
    """The header of a final, masked frame with an ``n``-byte payload (key not included)."""
    if n < 126:
        return bytes((0x80 | opcode, 0x80 | n))
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    return struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)


class FrameWriter:
    """Builds masked client-to-server frames. Not thread-safe: the I/O thread owns it."""

    __slots__ = ("_keys", "_pos")

    def __init__(self) -> None:
        self._keys = b""
        self._pos = 0

    def _mask_key(self) -> bytes:
        # RFC 6455 wants unpredictable keys: take them from the OS CSPRNG, in bulk.
        if self._pos >= len(self._keys):
            self._keys = os.urandom(4096)
            self._pos = 0
        key = self._keys[self._pos : self._pos + 4]
        self._pos += 4
        return key

    def frame(self, payload: bytes, opcode: int = OP_TEXT) -> bytes:
        """Return one complete, masked, final frame carrying ``payload``."""
        key = self._mask_key()
        return _header(len(payload), opcode) + key + ABNF.mask(key, payload)

    def text(self, text: str) -> bytes:
        """Return a masked text frame."""
        return self.frame(text.encode("utf-8"), OP_TEXT)

    def frames(self, payloads: list[bytes]) -> bytes:
        """Return masked text frames for ``payloads``, ready for one ``sendall``.

        Masks all payloads with one XOR over their concatenation (each frame still
        has its own key): one big-integer operation instead of one per frame.
        """
        if len(payloads) == 1:
            return self.frame(payloads[0])
        heads = []
        keys = []
        for payload in payloads:
            n = len(payload)
            key = self._mask_key()
            heads.append(_header(n, OP_TEXT) + key)
            keys.append((key * (n // 4 + 1))[:n])
        data = b"".join(payloads)
        size = len(data)
        masked = (int.from_bytes(data, "little") ^ int.from_bytes(b"".join(keys), "little")).to_bytes(size, "little")
        out = []
        pos = 0
        for head, payload in zip(heads, payloads, strict=True):
            end = pos + len(payload)
            out.append(head)
            out.append(masked[pos:end])
            pos = end
        return b"".join(out)
