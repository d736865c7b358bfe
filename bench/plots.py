"""PNG plots for ``bench.compare`` (matplotlib, Agg backend; the ``bench`` extra)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

STYLE = {
    "swsync": {"color": "#1f77b4", "marker": "o"},
    "official": {"color": "#d62728", "marker": "s"},
    "bare": {"color": "#7f7f7f", "marker": "^", "linestyle": "--"},
}

Summary = Mapping[int, Mapping[str, Mapping[str, float]]]  # concurrency -> client -> metrics


def _axes(title: str, ylabel: str, concurrency: list[int]):  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    ax.set_xscale("log", base=2)
    ax.set_xticks(concurrency)
    ax.set_xticklabels([str(c) for c in concurrency])
    ax.set_xlabel("concurrency (threads / tasks / pipelined window)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    return plt, fig, ax


def _plot(summary: Summary, labels: Mapping[str, str], key: str, title: str, ylabel: str,
          path: Path, fmt: str, note: str) -> None:
    concurrency = sorted(summary)
    plt, fig, ax = _axes(title, ylabel, concurrency)
    for client, style in STYLE.items():
        xs = [c for c in concurrency if client in summary[c]]
        if not xs:
            continue
        ys = [summary[c][client][key] for c in xs]
        ax.plot(xs, ys, label=labels.get(client, client), linewidth=2, markersize=6, **style)
        below = client == "bare"  # keep the reference line's labels off the others
        for x, y in zip(xs, ys):
            ax.annotate(fmt.format(y), (x, y), textcoords="offset points", xytext=(0, -13 if below else 7),
                        ha="center", fontsize=8, color=style["color"])
    ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.12)
    ax.legend(loc="best", fontsize=9)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="#555555", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def plot_send_wait(summary: Summary, labels: Mapping[str, str], directory: Path, note: str = "") -> list[Path]:
    """Write compare-throughput.png and compare-cpu.png (send + wait until delivered).

    ``summary`` maps concurrency to client to medians (``rate``, ``cpu_us``);
    ``note`` is a one-line footer (how and where it was measured).
    """
    directory.mkdir(parents=True, exist_ok=True)
    throughput = directory / "compare-throughput.png"
    cpu = directory / "compare-cpu.png"
    _plot(summary, labels, "rate", "RELAY send + wait until delivered: throughput (higher is better)",
          "messages per second (median)", throughput, "{:,.0f}", note)
    _plot(summary, labels, "cpu_us", "RELAY send + wait until delivered: client CPU (lower is better)",
          "client CPU µs per message (median)", cpu, "{:.0f}", note)
    return [throughput, cpu]
