"""``bench.compare``'s orchestration: the client subprocesses, the repetitions, the cold path, py-spy.

A :class:`Bench` owns one emulator process (its control channel), the TLS CA and
a working directory, and runs each cell in a fresh emulator state and a fresh
client subprocess (``python -m bench.workloads``, protocol in ``bench.workloads``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import workloads
from bench.common import ROOT, EmulatorHandle, median
from bench.workloads.harness import FROM, INBOUND_CONTEXT, TO

CONCURRENCY = (1, 8, 64, 256)
FIRE_SENDERS = 64
CLIENTS = ("swsync", "official", "bare")
BASELINE = "swsync-base"  # --baseline DIR: another swsync package, run as one more client
REST_CLIENTS = ("swsync", "twilio", "requests")
WORKER_TIMEOUT = 300.0  # seconds before a stuck client subprocess is killed

Runs = dict[str, list[dict[str, float]]]  # client -> one metrics dict per repetition


class Bench:
    """The parent: one emulator, TLS files, and a way to run client subprocesses.

    ``baseline`` is a directory holding another swsync package (before/after
    runs): the baseline client imports that package and this tree's ``bench``.
    """

    def __init__(self, emu: EmulatorHandle, ca: str, workdir: Path, baseline: str | None = None) -> None:
        self.emu = emu
        self.ca = ca
        self.workdir = workdir  # the clients' cwd, so that python -m does not put ROOT first on sys.path
        self.baseline = baseline
        self.baseline_path: str | None = None  # a directory holding only DIR's swsync (a symlink)
        if baseline:
            package = Path(baseline).resolve() / "swsync"
            if not (package / "__init__.py").is_file():
                raise SystemExit(f"--baseline {baseline}: no swsync package there")
            path = workdir / "baseline-path"
            path.mkdir(exist_ok=True)
            (path / "swsync").symlink_to(package, target_is_directory=True)
            self.baseline_path = str(path)

    def env(self, client: str = "") -> dict[str, str]:
        """The environment of a client subprocess (the baseline client imports swsync from its DIR)."""
        env = dict(os.environ)
        env["SIGNALWIRE_RELAY_CA_FILE"] = env["SIGNALWIRE_REST_CA_FILE"] = self.ca
        # requests lets REQUESTS_CA_BUNDLE override Session.verify: point it at our CA too.
        env["REQUESTS_CA_BUNDLE"] = self.ca
        env.pop("CURL_CA_BUNDLE", None)
        # Let the first (discarded) run write bytecode caches, as any installed package has.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        tree = self.baseline_path if client == BASELINE else None
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, str(ROOT), env.get("PYTHONPATH")]))
        return env

    def spawn(self, spec: dict[str, Any]) -> subprocess.Popen[str]:
        """Start a client subprocess (it inherits this process's core) and wait until ready."""
        spec = dict(spec, emu=dict(self.emu), ca=self.ca)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.workloads"],
            cwd=self.workdir,
            env=self.env(spec["client"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"client subprocess failed to start: {spec['client']} {spec['workload']}")
        return proc

    def run(
        self,
        spec: dict[str, Any],
        *,
        inject: int = 0,
        seed: int = 0,
        before_go: Callable[[subprocess.Popen[str]], None] | None = None,
    ) -> dict[str, Any]:
        """Run one cell in a fresh emulator state and a fresh client subprocess."""
        self.emu.command("reset")
        if seed:
            self.emu.command(f"seed {seed}")
        proc = self.spawn(spec)
        watchdog = threading.Timer(WORKER_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            if before_go is not None:
                before_go(proc)
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            if inject:
                self.emu.command(f"inject {inject} {INBOUND_CONTEXT}")
            line = proc.stdout.readline()
            proc.wait(30)
        finally:
            watchdog.cancel()
        if not line:
            raise RuntimeError(f"client subprocess died: {spec['client']} {spec['workload']}")
        result: dict[str, Any] = json.loads(line)
        return result


def metrics(r: dict[str, Any]) -> dict[str, float]:
    """One client run's figures per message (or request, or record) from its result line."""
    n = max(r["n"], 1)
    nan = float("nan")  # no latency figure (inbound)
    return {
        "rate": r["n"] / r["wall"],
        "cpu_us": r["cpu"] / n * 1e6,
        "rss_mib": r["rss_kib"] / 1024,
        "p50_ms": nan if r["p50"] is None else r["p50"] * 1e3,
        "p99_ms": nan if r["p99"] is None else r["p99"] * 1e3,
        "lost": r["lost"],
        "sys_pct": 100 * r["sys"] / r["cpu"] if r["cpu"] else 0.0,
        "csw": (r["vcsw"] + r["ivcsw"]) / n,
        **{"t:" + name: sec / n * 1e6 for name, sec in r.get("threads", {}).items()},
    }


def _progress(key: str, rep: int, client: str, m: dict[str, float]) -> None:
    print(
        f"  {key:<18} rep {rep + 1} {client:<9} {m['rate']:>9,.0f}/s {m['cpu_us']:>6.0f} µs "
        f"(sys {m['sys_pct']:2.0f}%, {m['csw']:4.1f} csw/msg) p99 {m['p99_ms']:6.2f} ms "
        f"rss {m['rss_mib']:5.1f} MiB lost {m['lost']}",
        flush=True,
    )


def run_cells(
    bench: Bench,
    cells: list[tuple[str, dict[str, Any]]],
    clients: Sequence[str],
    repeat: int,
    *,
    rest: bool = False,
    progress: bool = True,
) -> dict[str, Runs]:
    """Run every cell ``repeat`` times back to back, clients interleaved (order rotated)."""
    results: dict[str, Runs] = {}
    for key, spec in cells:
        per_client: Runs = defaultdict(list)
        for rep in range(repeat):
            order = list(clients[rep % len(clients) :]) + list(clients[: rep % len(clients)])
            for client in order:
                cell = dict(spec, client=client, rest=rest)
                extra: dict[str, Any] = {}
                if spec["workload"] == "inbound":
                    extra["inject"] = spec["n"]
                if spec["workload"] == "stream":
                    extra["seed"] = spec["n"]
                m = metrics(bench.run(cell, **extra))
                per_client[client].append(m)
                if progress:
                    _progress(key, rep, client, m)
        results[key] = dict(per_client)
    return results


def cell_n(n: int, concurrency: int) -> int:
    """Messages in a send+wait cell: n/5 at concurrency 1 (latency-bound), whole rounds otherwise."""
    if concurrency == 1:
        return max(200, n // 5)
    return n // concurrency * concurrency


def relay_cells(bench: Bench, n: int, clients: Sequence[str], repeat: int) -> tuple[dict[str, Runs], dict[str, Runs]]:
    """Send + wait at every concurrency (keys ``c=N``); then fire-and-forget and inbound."""
    wait = 60.0
    print(f"send + wait until delivered, {n:,} messages per cell, {repeat} repetitions", flush=True)
    send_wait = [
        (f"c={c}", {"workload": "send-wait", "n": cell_n(n, c), "concurrency": c, "wait_timeout": wait})
        for c in CONCURRENCY
    ]
    sw = run_cells(bench, send_wait, clients, repeat)
    print("fire-and-forget and inbound", flush=True)
    fire = {"workload": "fire-forget", "n": n, "concurrency": FIRE_SENDERS, "wait_timeout": wait}
    inbound = {"workload": "inbound", "n": n, "concurrency": 1, "wait_timeout": wait}
    other = run_cells(bench, [("fire-and-forget", fire), ("inbound", inbound)], clients, repeat)
    return sw, other


def rest_cells(bench: Bench, creates: int, records: int, repeat: int) -> dict[str, Runs]:
    """REST: ``creates`` sequential creates; streaming ``records`` seeded records (keys create, stream)."""
    print(f"REST: {creates} creates, stream {records:,} records", flush=True)
    cells = [
        ("create", {"workload": "create", "n": creates, "concurrency": 1}),
        ("stream", {"workload": "stream", "n": records, "concurrency": 1}),
    ]
    return run_cells(bench, cells, REST_CLIENTS, repeat, rest=True)


def official_unpatched(bench: Bench, n: int, conc: int, wait_timeout: float) -> dict[str, Any]:
    """The official SDK as shipped: how many of ``n`` messages' ``wait()`` succeed."""
    spec = {"client": "official", "workload": "send-wait", "n": n, "concurrency": conc, "shim": False}
    return bench.run(dict(spec, wait_timeout=wait_timeout))


def _cold_commands(bench: Bench) -> dict[str, tuple[list[str], dict[str, str]]]:
    swsync_exe = shutil.which("swsync", path=str(Path(sys.executable).parent)) or shutil.which("swsync")
    if swsync_exe is None:
        raise RuntimeError("the swsync console script is not installed (pip install -e .)")
    emu = bench.emu
    base = bench.env()
    base.pop("PYTHONPATH", None)  # what a user's cron job would have
    base.update(SIGNALWIRE_PROJECT_ID=emu["project"], SIGNALWIRE_API_TOKEN=emu["token"])
    host = emu["relay_url"].split("://", 1)[1]
    commands = {
        "swsync": (
            [swsync_exe, "send", "--to", TO, "--from", FROM, "--body", "cold start", "--wait"],
            dict(base, SIGNALWIRE_SPACE=emu["relay_url"]),
        ),
        "official": (
            [sys.executable, str(workloads.DIR / "oneshot_official.py"), TO, FROM],
            dict(base, SIGNALWIRE_SPACE=host),
        ),
        "bare": (
            [sys.executable, str(workloads.DIR / "oneshot_bare.py"), TO, FROM],
            dict(base, BENCH_RELAY_URL=emu["relay_url"]),
        ),
    }
    if bench.baseline_path:
        argv, env = commands["swsync"]
        commands[BASELINE] = (argv, dict(env, PYTHONPATH=bench.baseline_path))
    return commands


def cold_path(bench: Bench, runs: int) -> dict[str, dict[str, float]]:
    """Process start to delivered, median wall time and max RSS of ``runs`` runs each (``bench.cold_launcher``)."""
    commands = _cold_commands(bench)
    proc = subprocess.run(
        [sys.executable, "-S", str(ROOT / "bench" / "cold_launcher.py"), str(runs)],
        input=json.dumps([[name, argv, env] for name, (argv, env) in commands.items()]),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"one-shot runs failed: {proc.stderr.strip()}")
    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for name, wall, rss_kib in json.loads(proc.stdout):
        samples[name].append((wall, rss_kib / 1024))
    return {
        name: {"wall": median([s[0] for s in v]), "rss": median([s[1] for s in v]), "min": min(s[0] for s in v)}
        for name, v in samples.items()
    }


def _py_spy(out: Path, rate: int, gil: bool) -> tuple[list[subprocess.Popen[bytes]], Callable[[Any], None]]:
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if pyspy is None:
        raise RuntimeError("py-spy is not installed")
    spy: list[subprocess.Popen[bytes]] = []

    def attach(proc: subprocess.Popen[str]) -> None:
        command = [pyspy, "record", *(["--gil"] if gil else []), "--nonblocking", "-f", "raw", "-r", str(rate)]
        command += ["-o", str(out), "--pid", str(proc.pid)]
        spy.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # sleep-ok: py-spy has no readiness signal; give it time to attach

    return spy, attach


def profile(bench: Bench, n: int, conc: int, out: Path, rate: int = 250, gil: bool = True) -> tuple[str, str]:
    """Sample the swsync client at ``conc`` with ``py-spy record --gil -f raw``; return (raw output, header)."""
    spy, attach = _py_spy(out, rate, gil)
    result = bench.run(
        {"client": "swsync", "workload": "send-wait", "n": n, "concurrency": conc, "wait_timeout": 30.0},
        before_go=attach,
    )
    for p in spy:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGINT)
            p.wait(10)
    m = metrics(result)
    header = (
        f"swsync send+wait, {conc} threads, {m['rate']:,.0f} msgs/s, "
        f"{m['cpu_us']:.0f} µs CPU/msg (sampled at {rate} Hz, --gil)"
    )
    return out.read_text(), header
