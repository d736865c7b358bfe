"""``bench.compare``'s reporting: medians and ratios, the Markdown tables and sections, the headline, plots.

Every function here takes the results of :mod:`bench.runner` and returns text;
nothing here runs a client.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from bench.common import ROOT, machine, median, table
from bench.runner import BASELINE, CLIENTS, CONCURRENCY, FIRE_SENDERS, REST_CLIENTS, Runs, cell_n

LABELS = {
    "swsync": "swsync RelayClient",
    BASELINE: "swsync baseline",
    "official": "official SDK 3.7.5 + shim",
    "bare": "bare websocket-client loop",
}
REST_LABELS = {"swsync": "swsync RestClient", "twilio": "twilio 9.x Client", "requests": "bare requests.Session"}
Summary = dict[str, dict[str, float]]  # client -> medians
IMG = ROOT / "docs" / "img"


def labels(baseline: str | None, baseline_label: str | None = None) -> dict[str, str]:
    """The clients' names in tables and plots; the baseline's says which tree it is."""
    out = dict(LABELS)
    if baseline:
        out[BASELINE] = f"swsync baseline ({baseline_label or baseline})"
    return out


def summarize(runs: Runs, ceiling: str) -> Summary:
    """Medians per client, plus medians of per-repetition ratios to ``ceiling``."""
    out: Summary = {}
    for client, ms in runs.items():
        s = {k: median([m.get(k, 0.0) for m in ms]) for k in ms[0]}
        s["lost"] = sum(m["lost"] for m in ms)
        if ceiling in runs:
            base = runs[ceiling]
            s["rate_x"] = median([m["rate"] / b["rate"] for m, b in zip(ms, base, strict=False)])
            s["cpu_x"] = median([m["cpu_us"] / b["cpu_us"] for m, b in zip(ms, base, strict=False)])
        out[client] = s
    return out


def ratio(runs: Runs, a: str, b: str, key: str = "rate") -> float:
    """The median of client ``a``'s ``key`` over client ``b``'s, repetition by repetition."""
    return median([x[key] / y[key] for x, y in zip(runs[a], runs[b], strict=False)])


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


def _ms(v: float) -> str:
    return "–" if v != v else f"{v:.2f}"  # NaN: not measured


def relay_table(
    summaries: Mapping[Any, Mapping[str, Mapping[str, float]]],
    key_label: str,
    names: Mapping[str, str] = LABELS,
    latency: bool = True,
) -> str:
    """One row per cell and client: rate, CPU, their ratios to the bare loop, latency, RSS, lost."""
    headers = [key_label, "client", "msgs/s", "× bare", "CPU µs/msg", "CPU × bare"]
    if latency:
        headers += ["send p50 ms", "send p99 ms"]
    headers += ["peak RSS MiB", "lost"]
    rows = []
    for key, summary in summaries.items():
        for client in (*CLIENTS[:1], BASELINE, *CLIENTS[1:]):
            s = summary.get(client)
            if s is None:
                continue
            row: list[object] = [
                key,
                names[client],
                _fmt_rate(s["rate"]),
                "1.00" if client == "bare" else f"{s['rate_x']:.2f}",
                f"{s['cpu_us']:.0f}",
                "1.00" if client == "bare" else f"{s['cpu_x']:.2f}",
            ]
            if latency:
                row += [_ms(s["p50_ms"]), _ms(s["p99_ms"])]
            row += [f"{s['rss_mib']:.1f}", int(s["lost"])]
            rows.append(row)
    return table(headers, rows)


def _breakdown_row(key: Any, client: str, s: Mapping[str, float], summary: Mapping[str, Any]) -> list[object]:
    reader = s.get("t:swsync-reader", 0.0)
    dispatch = sum(v for k, v in s.items() if k.startswith("t:swsync-dispatch"))
    callers = s.get("t:callers", 0.0)
    return [
        key if client == "swsync" else f"{key} (baseline)",
        f"{s['cpu_us']:.0f}",
        f"{reader:.0f}",
        f"{callers:.0f}",
        f"{dispatch:.0f}",
        f"{max(0.0, s['cpu_us'] - reader - callers - dispatch):.0f}",
        f"{s['sys_pct']:.0f}%",
        f"{s['csw']:.1f}",
        f"{summary['bare']['csw']:.1f}" if "bare" in summary else "–",
    ]


def cpu_breakdown_table(summaries: Mapping[Any, Mapping[str, Mapping[str, float]]]) -> str:
    """swsync's client CPU per message by thread, plus kernel share and context switches."""
    rows = [
        _breakdown_row(key, client, summary[client], summary)
        for key, summary in summaries.items()
        for client in ("swsync", BASELINE)
        if client in summary
    ]
    headers = ["cell", "CPU µs/msg", "reader thread", "caller threads", "dispatch thread", "other"]
    return table(headers + ["kernel share", "context switches/msg", "bare loop csw/msg"], rows)


def send_wait_headline(sw: Mapping[str, Runs], sw_sum: Mapping[int, Summary], names: Mapping[str, str]) -> list[str]:
    """The summary lines about send + wait (and the baseline, when there is one)."""
    vs64 = ratio(sw["c=64"], "swsync", "official")
    cpu64, bare64 = sw_sum[64]["swsync"]["cpu_us"], sw_sum[64]["bare"]["cpu_us"]
    cpu_vs64 = ratio(sw["c=64"], "official", "swsync", "cpu_us")
    lines = [
        f"send + wait at concurrency 64: swsync **{vs64:.2f}×** the official SDK's "
        f"throughput (aim ≥ 1.5×) using **1/{cpu_vs64:.1f}** of its CPU per message; "
        f"**{cpu64:.0f} µs** client CPU per message against the bare loop's {bare64:.0f} µs "
        f"(≈ {cpu64 / bare64 * 120:.0f} µs on the reference machine; aim ≤ 120 µs)"
    ]
    if BASELINE in sw["c=64"]:
        cells = [f"c={c}" for c in CONCURRENCY]
        lines.append(
            f"against {names[BASELINE]}: throughput "
            + ", ".join(f"{k} {ratio(sw[k], 'swsync', BASELINE):.2f}×" for k in cells)
            + "; CPU per message "
            + ", ".join(f"{k} {ratio(sw[k], 'swsync', BASELINE, 'cpu_us'):.2f}×" for k in cells)
        )
    return lines


def send_wait_section(n: int, sw: Mapping[str, Runs], sw_sum: Mapping[int, Summary], names: Mapping[str, str]) -> str:
    """The "RELAY: send and wait until delivered" section."""
    vs64 = ratio(sw["c=64"], "swsync", "official")
    cpu64, bare64 = sw_sum[64]["swsync"]["cpu_us"], sw_sum[64]["bare"]["cpu_us"]
    return "\n".join(
        [
            "### RELAY: send and wait until delivered",
            "",
            f"{n:,} messages per cell ({cell_n(n, 1):,} at concurrency 1, where every message "
            f"waits for the previous one; {cell_n(n, 256):,} at 256); concurrency = threads (swsync), "
            'tasks (official SDK), or the pipelined window of the bare loop. "× bare" is the '
            "client's figure divided by the bare loop's in the same repetition (median of the "
            "ratios); send p50/p99 is the time from calling `send_message` to its return (the "
            "`messaging.send` round trip).",
            "",
            relay_table(sw_sum, "concurrency", names),
            "",
            f"At concurrency 64 swsync's throughput is **{vs64:.2f}×** the official SDK's "
            f"(median of per-repetition ratios; aim ≥ 1.5×), at **{cpu64:.0f} µs** client CPU per "
            f"message. The aim, ≤ 120 µs, was set on a faster machine where the bare loop took "
            f"120 µs; here the bare loop takes {bare64:.0f} µs, so swsync's figure scales to "
            f"**≈ {cpu64 / bare64 * 120:.0f} µs** there.",
            "",
            "![Throughput vs concurrency](img/compare-throughput.png)",
            "![Client CPU per message vs concurrency](img/compare-cpu.png)",
        ]
    )


def other_headline(other: Mapping[str, Runs], other_sum: Mapping[str, Summary]) -> str:
    """The summary line about inbound and fire-and-forget."""
    return (
        f"inbound: swsync handles **{other_sum['inbound']['swsync']['rate']:,.0f}** "
        f"messages/s at {other_sum['inbound']['swsync']['cpu_us']:.0f} µs each, "
        f"{ratio(other['inbound'], 'swsync', 'official'):.1f}× the official SDK; "
        f"fire-and-forget {ratio(other['fire-and-forget'], 'swsync', 'official'):.1f}×"
    )


def other_section(n: int, other_sum: Mapping[str, Summary], names: Mapping[str, str]) -> str:
    """The "RELAY: fire-and-forget and inbound" section."""
    return "\n".join(
        [
            "### RELAY: fire-and-forget and inbound",
            "",
            f"Fire-and-forget: {n:,} sends from {FIRE_SENDERS} threads/tasks that do not wait; the "
            "clock stops when the completion callbacks (`on_completed`) have counted every "
            f"delivery (the bare loop keeps {FIRE_SENDERS} sends awaiting their result). Inbound: "
            f"the emulator process injects {n:,} `messaging.receive` events (64 per event-loop "
            "pass, so injection outpaces every client); the clock runs from the start of injection "
            "until the client's handler has seen them all (the bare loop counts and ACKs the frames).",
            "",
            relay_table(other_sum, "workload", names),
        ]
    )


def breakdown_section(sw_sum: Mapping[int, Summary], other_sum: Mapping[str, Summary]) -> str:
    """The "Where swsync's client CPU goes" section."""
    cells = {**{f"send+wait c={c}": sw_sum[c] for c in CONCURRENCY}, **other_sum}
    return "\n".join(
        [
            "### Where swsync's client CPU goes",
            "",
            "Per message, by thread (each thread's own CPU clock; callers = the benchmark's "
            "threads inside `send_message`/`wait`), the kernel's share of the process's CPU time, "
            "and context switches per message (voluntary + involuntary) next to the bare loop's.",
            "",
            cpu_breakdown_table(cells),
        ]
    )


def lost_swsync(*runs: Mapping[str, Runs]) -> int:
    """Events swsync lost over every repetition of these cells."""
    return int(sum(m["lost"] for cells in runs for by_client in cells.values() for m in by_client["swsync"]))


def unpatched_section(r: Mapping[str, Any], n: int, conc: int, wait: float) -> str:
    """The "official SDK as shipped" section."""
    return "\n".join(
        [
            "### The official SDK as shipped",
            "",
            f"signalwire-sdk 3.7.5 without the shim, {n} messages from {conc} tasks, "
            f"`await message.wait(timeout={wait:g})`: **{r['delivered']} delivered, "
            f"{r['lost']} timed out** (their state events arrived in the same read as the send "
            f"result and were dropped as belonging to an unknown message), {r.get('errors', 0)} "
            f"send errors, {r['wall']:.1f} s for the run. Every other official-SDK figure here "
            "uses the benchmark-side shim described above.",
        ]
    )


def unpatched_headline(r: Mapping[str, Any], n: int, wait: float, lost: int | None) -> str:
    """The summary line about the official SDK as shipped (``lost``: swsync's, None when not measured)."""
    return (
        f"the official SDK as shipped: {r['delivered']} of {n} messages reached "
        f"`delivered` within {wait:g} s (early state events dropped); swsync lost "
        f"{lost if lost is not None else 'n/a'} events in this run"
    )


def cold_headline(cold: Mapping[str, Mapping[str, float]]) -> str:
    """The summary line about the one-shot cold path."""
    return (
        f"one-shot `swsync send --wait`: **{cold['swsync']['wall']:.3f} s**, "
        f"{cold['swsync']['rss']:.1f} MiB (aim ≤ 0.10 s, ≤ 25 MiB); official SDK script "
        f"{cold['official']['wall']:.3f} s, bare websocket-client {cold['bare']['wall']:.3f} s"
    )


def cold_section(cold: Mapping[str, Mapping[str, float]], runs: int, names: Mapping[str, str]) -> str:
    """The "One-shot cold path" section."""
    programs = {
        "swsync": "`swsync send --wait` (console script)",
        BASELINE: f"`swsync send --wait`, {names[BASELINE]}",
        "official": "official SDK script (+ shim)",
        "bare": "bare websocket-client script",
    }
    rows = [
        [
            programs[k],
            f"{v['wall']:.3f}",
            f"{v['min']:.3f}",
            f"{v['rss']:.1f}",
            f"{v['wall'] / cold['bare']['wall']:.2f}",
        ]
        for k, v in cold.items()
    ]
    return "\n".join(
        [
            "### One-shot cold path",
            "",
            f"Process start to delivered to exit, for one message; median of {runs} runs each "
            "(interleaved, after one discarded warm-up round); max RSS from `wait4()`. Aim for swsync: "
            "≤ 0.10 s.",
            "",
            table(["program", "wall s (median)", "wall s (best)", "max RSS MiB", "× bare wall"], rows),
        ]
    )


def rest_headline(rr: Mapping[str, Runs]) -> str:
    """The summary line about REST."""
    return (
        f"REST: swsync creates {ratio(rr['create'], 'swsync', 'twilio'):.2f}× and "
        f"streams {ratio(rr['stream'], 'swsync', 'twilio'):.2f}× as fast as twilio 9 "
        f"({ratio(rr['create'], 'swsync', 'requests'):.2f}× and "
        f"{ratio(rr['stream'], 'swsync', 'requests'):.2f}× a bare requests.Session)"
    )


def _rest_rows(rr: Mapping[str, Runs]) -> list[list[object]]:
    rows: list[list[object]] = []
    for op, unit in (("create", "requests/s"), ("stream", "records/s")):
        s = summarize(rr[op], "requests")
        for client in REST_CLIENTS:
            c = s[client]
            rows.append(
                [
                    op,
                    REST_LABELS[client],
                    f"{_fmt_rate(c['rate'])} {unit}",
                    "1.00" if client == "requests" else f"{c['rate_x']:.2f}",
                    f"{c['cpu_us']:.0f}",
                    "1.00" if client == "requests" else f"{c['cpu_x']:.2f}",
                    f"{c['p50_ms']:.2f}" if op == "create" else "–",
                    f"{c['p99_ms']:.2f}" if op == "create" else "–",
                    f"{c['rss_mib']:.1f}",
                ]
            )
    return rows


def rest_section(rr: Mapping[str, Runs], creates: int, records: int) -> str:
    """The "REST (cXML API) over TLS" section."""
    headers = ["op", "client", "rate", "× bare", "CPU µs", "CPU × bare", "p50 ms", "p99 ms", "peak RSS MiB"]
    return "\n".join(
        [
            "### REST (cXML API) over TLS",
            "",
            f"`create`: {creates:,} sequential `POST Messages`; `stream`: every one of "
            f"{records:,} seeded records, 1,000 per page (swsync builds typed records, twilio "
            "its `MessageInstance`s, the bare session only decodes JSON). twilio is pointed at the "
            "emulator by an `HttpClient` subclass that rewrites `https://api.twilio.com/2010-04-01` "
            "to `<emulator>/api/laml/2010-04-01`; account SID = project id. CPU is per request "
            '(create) or per record (stream); "× bare" compares with the bare session.',
            "",
            table(headers, _rest_rows(rr)),
        ]
    )


def intro(repeat: int, elapsed: float, headline: Sequence[str]) -> str:
    """The head-to-head section's opening: how it was measured, then the summary lines."""
    lines = [
        "## Head-to-head",
        "",
        "Regenerate with `python -m bench.compare` (5–10 minutes on 2 cores; `--quick` 1.5–3; "
        "`--no-write` prints without touching docs/; `--profile` adds a py-spy profile of swsync at "
        "concurrency 64; `--baseline DIR` adds another swsync tree as one more client, for "
        "before/after). Needs the `bench` extra. One emulator process (state delays 0, TLS with a throwaway CA) "
        "pinned to core 0; each client "
        "in its own subprocess pinned to core 1, measuring its own wall time, process CPU time "
        "(all threads) and peak RSS. Each cell is repeated back to back with the clients "
        f"interleaved; figures are medians of {repeat} repetitions. Versions: "
        f"{versions()}. Run took {elapsed / 60:.1f} min.",
        "",
        "The official SDK loses early state events (see below), so its figures use a "
        "benchmark-side shim: state events for a message id it does not know yet are held, and "
        "replayed through the SDK's own handler as soon as its `send_message` has registered the "
        "message. The bare loop is the ceiling (see docs/design.md, "
        '"Measurements"): one thread, a pipelined window, `skip_utf8_validation=True`, one '
        "websocket frame (one TLS record, one syscall) per `send()`. It is the ceiling for a "
        "client that writes each frame on its own; swsync coalesces the ACKs and requests of one "
        "read into one write, which is why it can beat it.",
    ]
    if headline:
        lines += ["", "Summary (medians; ratios measured back to back):", ""] + [f"- {h}" for h in headline]
    return "\n".join(lines)


def write_plots(sw_sum: Mapping[int, Summary], names: Mapping[str, str], n: int, repeat: int) -> None:
    """Write the send + wait plots to docs/img/ (matplotlib: the ``bench`` extra)."""
    from bench.plots import plot_send_wait

    IMG.mkdir(parents=True, exist_ok=True)
    note = (
        f"{n:,} messages per cell, median of {repeat} runs, TLS on loopback; emulator on "
        f"core 0, client on core 1 (python -m bench.compare)\n{machine()}"
    )
    plot_send_wait(sw_sum, names, IMG, note=note)


def versions() -> str:
    """The versions of swsync (and its tree) and of every client library, on one line."""
    from importlib import metadata

    out = []
    for dist in ("swsync", "signalwire-sdk", "websocket-client", "websockets", "twilio", "requests"):
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(f"{dist} (not installed)")
    out[0] += f" (tree {git_rev()})"
    return ", ".join(out)


def git_rev() -> str:
    """The commit of this tree, marked ``+local`` when swsync/ has uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "swsync"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + (" +local changes" if dirty else "")


# ------------------------------------------------------------------ py-spy profile


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)".
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3", "/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def _category(frames: list[str]) -> str:
    leaf = frames[-1]
    joined = ";".join(frames)
    if "bench/workloads/" in leaf or "threading.py" in leaf and "bench-" in joined:
        return "benchmark threads (loop, Event/Condition waits)"
    if "ssl.py" in leaf:
        return "TLS (ssl.py: send/recv)"
    if "json/" in leaf:
        return "JSON encode/decode"
    if "websocket/" in leaf or "wsframes.py" in leaf:
        return "websocket framing (mask, decode)"
    if "threading.py" in leaf or "queue.py" in leaf:
        return "thread handoff (locks, Condition, Event, queues)"
    if "selectors.py" in leaf or "select" in leaf.split(" (")[0]:
        return "select()"
    if "swsync/" in leaf:
        return "swsync Python code (self time)"
    return "other"


def summarize_profile(raw: str, header: str, top: int = 25) -> str:
    """Aggregate py-spy raw output: self time by function and by category, inclusive by swsync function."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    cats: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[_frame_name(frames[-1])] += count
        cats[_category(frames)] += count
        for name in {_frame_name(f) for f in frames}:
            incl[name] += count
    lines = [header, f"{total} samples", "", "By category (self time):"]
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in cats.most_common()]
    lines += ["", f"Top {top} functions by self time:"]
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in own.most_common(top)]
    lines += ["", "swsync and websocket functions by inclusive time:"]
    lines += [
        f"  {100 * c / total:5.1f}%  {name}"
        for name, c in incl.most_common()
        if ("swsync/" in name or "websocket/" in name) and c / total >= 0.01
    ][:top]
    return "\n".join(lines)
