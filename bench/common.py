"""Shared benchmark plumbing: an emulator in its own process, medians, tables, docs."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


class EmulatorHandle(dict):  # type: ignore[type-arg]
    """The emulator process's URLs and credentials, plus its control channel.

    A ``dict`` (``relay_url``, ``rest_url``, ``project``, ``token``) whose
    :meth:`command` sends one benchmark-only control line to the emulator
    process and returns its JSON reply. Not thread-safe.
    """

    def __init__(self, info: dict[str, str], proc: subprocess.Popen[str]) -> None:
        super().__init__(info)
        self._proc = proc

    @property
    def pid(self) -> int:
        """The emulator process's id."""
        return self._proc.pid

    def command(self, line: str) -> dict[str, Any]:
        """Run a control command in the emulator process; return its reply.

        Commands: ``reset`` (forget messages and sessions), ``seed N`` (add N
        finished messages), ``inject N CONTEXT [BATCH]`` (N ``messaging.receive``
        events, BATCH per emulator loop pass; 1 = the public ``inject_inbound``
        one at a time; replies ``{"seconds": ...}``), ``stats``.

        Raises:
            RuntimeError: the emulator process died or refused the command.
        """
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(line.rstrip("\n") + "\n")
        self._proc.stdin.flush()
        reply = self._proc.stdout.readline()
        if not reply:
            raise RuntimeError("the emulator process exited")
        data: dict[str, Any] = json.loads(reply)
        if "error" in data:
            raise RuntimeError(f"emulator command {line!r} failed: {data['error']}")
        return data


def pin(core: int) -> None:
    """Pin this process to one core when the machine has two or more (less noise)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})


@contextmanager
def emulator_process(*, pinned: bool = True, commands: str = "", **kwargs: Any) -> Iterator[EmulatorHandle]:
    """Run an emulator in a child process pinned to core 0; yield its URLs and credentials.

    ``kwargs`` go to ``Emulator`` (``state_delay`` defaults to 0). The yielded
    mapping also has a ``command()`` control channel (see :class:`EmulatorHandle`).
    ``pinned=False`` leaves the process on every core. ``commands`` names a
    module the emulator process imports whose ``extra_command(emu, words)``
    serves commands of a benchmark's own (e.g. ``bench.bulk_emulator``).
    The process runs ``bench.emulator_server``.
    """
    kwargs.setdefault("state_delay", 0.0)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.emulator_server", json.dumps(kwargs), commands],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if pinned and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(proc.pid, {0})
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process did not start")
        yield EmulatorHandle(json.loads(line), proc)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tls_files(directory: str | Path) -> tuple[str, str]:
    """Make a throwaway CA and a server certificate for 127.0.0.1 with ``trustme``.

    Returns ``(ca_file, server_pem)``: the CA bundle to give clients, and the
    server's key plus certificate chain to give ``Emulator(certfile=...)``.
    """
    import trustme  # a dev dependency; only the TLS benchmarks need it

    ca = trustme.CA()
    ca_file = Path(directory) / "bench-ca.pem"
    server_pem = Path(directory) / "bench-server.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    return str(ca_file), str(server_pem)


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[k]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render a Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """One line describing this machine and Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    stamp = datetime.date.today().isoformat()
    section = f"<!-- bench:{name} -->\n{body.rstrip()}\n\n_Measured {stamp} on {machine()}._\n<!-- /bench:{name} -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nRegenerate with the commands in the README.\n"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
