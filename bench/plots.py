"""PNG plots for ``bench.compare`` (matplotlib, Agg backend; the ``bench`` extra)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

STYLE = {
    "swsync": {"color": "#1f77b4", "marker": "o"},
    "swsync-base": {"color": "#9ecae1", "marker": "o", "linestyle": ":"},
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


def _plot(
    summary: Summary, labels: Mapping[str, str], key: str, title: str, ylabel: str, path: Path, fmt: str, note: str
) -> None:
    concurrency = sorted(summary)
    plt, fig, ax = _axes(title, ylabel, concurrency)
    for client, style in STYLE.items():
        xs = [c for c in concurrency if client in summary[c]]
        if not xs:
            continue
        ax.plot(
            xs,
            [summary[c][client][key] for c in xs],
            label=labels.get(client, client),
            linewidth=2,
            markersize=6,
            **style,
        )
    # Label each point: the highest value at a concurrency above its marker, the
    # lowest below, any in between to the right, so labels do not collide.
    for c in concurrency:
        ranked = sorted((summary[c][cl][key], cl) for cl in STYLE if cl in summary[c])
        for rank, (y, client) in enumerate(ranked):
            if rank == len(ranked) - 1:
                offset, ha = (0, 7), "center"
            elif rank == 0:
                offset, ha = (0, -13), "center"
            else:
                offset, ha = (8, -3), "left"
            ax.annotate(
                fmt.format(y),
                (c, y),
                textcoords="offset points",
                xytext=offset,
                ha=ha,
                fontsize=8,
                color=STYLE[client]["color"],
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )
    ax.set_xlim(concurrency[0] / 1.5, concurrency[-1] * 1.7)
    ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.12)
    ax.legend(loc="best", fontsize=9)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="#555555", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.06 if note else 0, 1, 1))
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
    _plot(
        summary,
        labels,
        "rate",
        "RELAY send + wait until delivered: throughput (higher is better)",
        "messages per second (median)",
        throughput,
        "{:,.0f}",
        note,
    )
    _plot(
        summary,
        labels,
        "cpu_us",
        "RELAY send + wait until delivered: client CPU (lower is better)",
        "client CPU µs per message (median)",
        cpu,
        "{:.0f}",
        note,
    )
    return [throughput, cpu]
