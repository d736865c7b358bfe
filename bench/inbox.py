"""Inbox benchmark (not a test): ``python -m bench.inbox [--messages N] [--repeat R] [--no-write]``.

Does an open inbox page slow the emulator? The emulator runs in its own process
(pinned to core 0), a 64-thread ``RelayClient`` here (core 1) sends N messages and
waits for each to be delivered, with no page open and then with the inbox open in
headless Chromium (the system's chromium and chromedriver, pinned to core 0 with
the emulator: on two cores, a browser on the client's core would measure the
client losing CPU, not the emulator slowing down), interleaved, ``--repeat``
times each. Reported: throughput, the emulator process's CPU per message, and for
the page: how long after a send a message shows up, how long a search over the
N messages takes to redraw, and the longest main-thread task the page ran while
the N messages streamed in (``PerformanceObserver`` long tasks). Results go to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from typing import TYPE_CHECKING, Any

from bench.common import EmulatorHandle, emulator_process, median, pin, table, write_section
from bench.workloads.harness import FROM, TO
from bench.workloads.swsync_relay import Senders, connect

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

LONG_TASKS = """
window.__long = [];
new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push(e.duration); })
  .observe({ type: "longtask", buffered: false });
"""
SEARCH = """
const done = arguments[arguments.length - 1];
const box = document.getElementById("search");
const t0 = performance.now();
box.value = arguments[0];
box.dispatchEvent(new Event("input"));
requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0));
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and all its descendants (the browser's processes)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rpartition(")")[2].split()[1])
            except OSError:
                continue
    family, frontier = {root}, [root]
    while frontier:
        kids = [pid for pid, ppid in parents.items() if ppid in frontier and pid not in family]
        family.update(kids)
        frontier = kids
    total = 0.0
    for pid in family:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass
    return total


def browser() -> WebDriver:
    from tests.support.browser import chromium

    driver, _ = chromium(prefix="swsync-bench-")
    return driver


def send_wait(
    emu: EmulatorHandle, n: int, browser_pid: int | None = None, threads: int = 64
) -> tuple[float, float, float]:
    """Send ``n`` messages from ``threads`` threads, each waiting until delivered.

    Returns (messages/s, emulator CPU µs per message, browser CPU µs per message).
    """
    pid = emu.pid  # the benchmark's own child process
    with connect(emu) as client:
        client.send_message(to_number=TO, from_number=FROM, body="warm-up").wait(10)
        senders = Senders(client, n // threads, threads, 60.0, body="inbox benchmark")
        gc.collect()
        b0 = tree_cpu(browser_pid) if browser_pid else 0.0
        wall0, cpu0 = time.perf_counter(), cpu_seconds(pid)
        senders.run()
        wall, cpu = time.perf_counter() - wall0, cpu_seconds(pid) - cpu0
        b = tree_cpu(browser_pid) - b0 if browser_pid else 0.0
    if senders.lost:
        raise TimeoutError(f"{senders.lost} messages not delivered within 60 s")
    done = senders.total
    return done / wall, cpu / done * 1e6, b / done * 1e6


def open_page(driver: WebDriver, emu: EmulatorHandle) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(emu["rest_url"] + "/_emulator/")
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "live").text.startswith("Live"))


def latency(driver: WebDriver, emu: EmulatorHandle, samples: int = 20) -> list[float]:
    """Seconds from a send's acceptance until its row is on the open page (newest first)."""
    from selenium.webdriver.support.ui import WebDriverWait

    found = []
    with connect(emu) as client:
        for i in range(samples):
            body = f"latency probe {i}"
            client.send_message(to_number=TO, from_number=FROM, body=body)
            t0 = time.perf_counter()
            WebDriverWait(driver, 30, poll_frequency=0.005).until(
                lambda d, body=body: (
                    body
                    in d.execute_script(
                        "const r = document.querySelector('#messages .vrow'); return r ? r.textContent : ''"
                    )
                )
            )
            found.append(time.perf_counter() - t0)
    return found


def page_figures(driver: WebDriver, n: int) -> dict[str, Any]:
    """With ``n`` messages on the page: rows in the DOM, search redraw times, long tasks."""
    rows = driver.execute_script("return document.querySelectorAll('#messages .vrow').length")
    total = driver.execute_script("return document.getElementById('live').textContent")
    searches = [driver.execute_async_script(SEARCH, q) for q in ("benchmark", "probe 1", "", "+1555", "")]
    long_tasks = driver.execute_script("return window.__long || []")
    return {
        "rows": rows,
        "live": total,
        "search_ms": searches,
        "longest_task_ms": max(long_tasks, default=0.0),
        "long_tasks": len(long_tasks),
    }


Run = tuple[float, float, float]  # msgs/s, emulator CPU µs/msg, browser CPU µs/msg


def open_run(driver: WebDriver, emu: EmulatorHandle, n: int) -> tuple[Run, dict[str, Any]]:
    """One run with the inbox open; returns it and the page's figures afterwards."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    emu.command("reset")
    open_page(driver, emu)
    driver.execute_script(LONG_TASKS)
    result = send_wait(emu, n, driver.service.process.pid)
    want = f"{n // 64 * 64 + 1} messages"
    try:
        WebDriverWait(driver, 60).until(lambda d: want in d.find_element(By.ID, "live").text)
    except Exception:
        raise RuntimeError(f"page shows {driver.find_element(By.ID, 'live').text!r}, wanted {want!r}") from None
    page = page_figures(driver, n)
    driver.get("about:blank")  # the page is closed for the next run
    return result, page


def run(n: int, repeat: int) -> dict[str, Any]:
    """``repeat`` times: closed, open, closed (each open run compared with its two neighbours)."""
    # The browser shares core 0 with the emulator: it competes with what is measured,
    # not with the client that drives the load (on core 1, and the bottleneck here).
    pin(0)
    driver = browser()
    pin(1)
    closed: list[tuple[Run, Run]] = []
    opened: list[Run] = []
    page: dict[str, Any] = {}
    try:
        with emulator_process() as emu:
            for _ in range(repeat):
                emu.command("reset")
                before = send_wait(emu, n)
                result, page = open_run(driver, emu, n)
                emu.command("reset")
                closed.append((before, send_wait(emu, n)))
                opened.append(result)
            emu.command("reset")
            open_page(driver, emu)
            lat = latency(driver, emu)
    finally:
        driver.quit()
    return {"closed": closed, "open": opened, "page": page, "latency": lat}


def report(n: int, repeat: int, r: dict[str, Any]) -> str:
    closed = [run for pair in r["closed"] for run in pair]
    c_rate, c_cpu = median([x[0] for x in closed]), median([x[1] for x in closed])
    o_rate, o_cpu = median([x[0] for x in r["open"]]), median([x[1] for x in r["open"]])
    o_browser = median([x[2] for x in r["open"]])
    ratio = median([o[0] / ((a[0] + b[0]) / 2) for o, (a, b) in zip(r["open"], r["closed"], strict=False)])
    noise = median([abs(b[0] / a[0] - 1) for a, b in r["closed"]])
    page, lat = r["page"], sorted(r["latency"])
    rows = [
        ["inbox closed", f"{c_rate:,.0f}", f"{max(x[0] for x in closed):,.0f}", f"{c_cpu:,.0f}", "–", "–"],
        [
            "inbox open (live)",
            f"{o_rate:,.0f}",
            f"{max(x[0] for x in r['open']):,.0f}",
            f"{o_cpu:,.0f}",
            f"{(o_cpu / c_cpu - 1) * 100:+.1f}%",
            f"{o_browser:,.0f}",
        ],
    ]
    runs = "; ".join(f"{a[0]:,.0f}/{o[0]:,.0f}/{b[0]:,.0f}" for o, (a, b) in zip(r["open"], r["closed"], strict=False))
    return "\n".join(
        [
            "## Inbox: the page open while the emulator works",
            "",
            f"`python -m bench.inbox --messages {n} --repeat {repeat}`: emulator in its own process (core 0), "
            f"`RelayClient` with 64 threads sending {n:,} messages and waiting for each to be delivered (core 1); "
            "each repetition runs closed, open (the inbox live in headless Chromium, pinned to core 0 with the "
            "emulator, so that it competes with the emulator and not with the load generator), "
            f"closed. {repeat} repetitions, closed/open/closed msgs/s: {runs}. Emulator CPU is the emulator "
            "process's CPU time per message; browser CPU is all Chromium processes'.",
            "",
            table(
                [
                    "",
                    "msgs/s (median)",
                    "msgs/s (best)",
                    "emulator CPU µs/msg",
                    "emulator CPU vs closed",
                    "browser CPU µs/msg",
                ],
                rows,
            ),
            "",
            f"Open vs its closed neighbours, median of the repetitions: {(ratio - 1) * 100:+.1f}% throughput "
            f"(two closed runs of one repetition differ by {noise * 100:.0f}% in the median: the machine's noise). "
            f"The figure that noise does not move is the emulator's CPU per message, {c_cpu:,.0f} µs closed and "
            f"{o_cpu:,.0f} µs open ({(o_cpu / c_cpu - 1) * 100:+.1f}%): the page costs the emulator one small "
            "JSON batch per interval, not work per event.",
            "",
            f"With {n:,} messages on the page: {page['rows']} message rows in the DOM (the list is "
            f"virtualized); a search over all of them redraws in "
            f"{', '.join(f'{ms:.0f}' for ms in page['search_ms'])} ms; while they streamed in, the page's "
            f"longest main-thread task took {page['longest_task_ms']:.0f} ms ({page['long_tasks']} tasks over 50 ms).",
            "",
            f"A sent message shows up on the open page {lat[len(lat) // 2] * 1000:.0f} ms after `send_message` "
            f"returns (median of {len(lat)}; max {lat[-1] * 1000:.0f} ms): updates are batched at most every 0.1 s "
            "(0.5 s under a flood).",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = p.parse_args(argv)
    result = run(args.messages, args.repeat)
    text = report(args.messages, args.repeat, result)
    print(text)
    print("raw:", {k: v for k, v in result.items() if k != "page"})
    if not args.no_write:
        write_section("inbox", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
