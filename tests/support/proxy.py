"""A loopback TCP proxy that tests can cut, refuse, blackhole and re-target.

It stands between a client and the emulator to simulate network failures that a
server cannot produce on its own: a dropped connection, a server that cannot be
reached for a while, and a half-open connection that silently stops carrying data.
"""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port``. Thread-safe; ``close()`` joins."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        # Guards every attribute below; waiters use _cond.
        self._cond = threading.Condition()
        self._refuse = False
        self._pairs: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        self.refused = 0
        self.upstream_bytes = 0
        self._closed = False
        self._spawn(self._accept_loop, "test-proxy-accept")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _spawn(self, target, name: str, *args) -> None:  # type: ignore[no-untyped-def]
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._cond:
            self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._cond:
                refuse = self._refuse
                if refuse:
                    self.refused += 1
                self._cond.notify_all()
            if refuse:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            blackhole = threading.Event()
            with self._cond:
                self._pairs.append((client, upstream, blackhole))
                self.accepted += 1
                self._cond.notify_all()
            self._spawn(self._pump, "test-proxy-up", client, upstream, blackhole, True)
            self._spawn(self._pump, "test-proxy-down", upstream, client, blackhole, False)

    def _pump(self, src: socket.socket, dst: socket.socket, blackhole: threading.Event, up: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if blackhole.is_set():
                    continue  # swallow: the connection looks alive but carries nothing
                if up:
                    with self._cond:
                        self.upstream_bytes += len(data)
                        self._cond.notify_all()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def drop_all(self) -> None:
        """Cut every open connection (both directions), as a network failure would."""
        with self._cond:
            pairs, self._pairs = self._pairs, []
        for a, b, _ in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def refuse(self, on: bool = True) -> None:
        """While on, accept new connections and close them at once."""
        with self._cond:
            self._refuse = on

    def blackhole(self) -> None:
        """Make every open connection silently stop carrying data (half-open)."""
        with self._cond:
            for _, _, hole in self._pairs:
                hole.set()

    def wait_refused(self, n: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.refused >= n, timeout), "no refused connection"

    def wait_accepted(self, n: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.accepted >= n, timeout), f"fewer than {n} connections"

    def wait_upstream(self, nbytes: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.upstream_bytes >= nbytes, timeout), "no upstream bytes"

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        except OSError:
            pass
        self._listener.close()
        self.drop_all()
        with self._cond:
            threads = list(self._threads)
        for t in threads:
            t.join(5)
