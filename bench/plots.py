"""PNG plots of a run: time to first audio per input size; throughput and latency versus concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

__all__ = ["plot_all"]

COLORS = {"bare KPipeline": "#888888", "server pcm": "#1f77b4", "server mp3": "#ff7f0e"}


def _bar(ax: Any, x: float, summary: dict[str, Any], width: float, color: str, label: str | None) -> None:
    p50, p95 = summary.get("p50"), summary.get("p95")
    if p50 is None:
        return
    ax.bar(x, p50, width, color=color, label=label, yerr=[[0], [max(0.0, p95 - p50)]], capsize=3)


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_first_audio(figure: dict[str, Any], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.26
    sizes = list(figure["sizes"])
    for i, size in enumerate(sizes):
        data = figure["sizes"][size]
        series = {
            "bare KPipeline": data["baseline"],
            "server pcm": data["server"]["pcm"],
            "server mp3": data["server"]["mp3"],
        }
        for j, (name, summary) in enumerate(series.items()):
            _bar(ax, i + (j - 1) * width, summary, width, COLORS[name], name if i == 0 else None)
        ratio = data["ratio"]["pcm"]
        if ratio is not None and data["server"]["pcm"]["p95"] is not None:
            ax.annotate(
                f"pcm {ratio:.2f}×", (i, data["server"]["pcm"]["p95"]), ha="center", va="bottom", fontsize=8
            )
    ax.set_xticks(range(len(sizes)), [f"{s}\n{figure['sizes'][s]['chars']} chars" for s in sizes])
    ax.set_ylabel("time to first audio (s): bar p50, whisker p95")
    ax.set_title(title, fontsize=10)
    ax.legend()
    _save(fig, path)


def plot_concurrency(figure: dict[str, Any], title: str, path: Path) -> None:
    levels = figure["levels"]
    streams = [level["streams"] for level in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(streams, [level["audio_s_per_wall_s"] or 0 for level in levels], "o-", label="tts-api")
    bare = figure["baseline"]["audio_s_per_wall_s"]["p50"]
    if bare is not None:
        left.axhline(bare, color=COLORS["bare KPipeline"], linestyle="--", label="bare KPipeline, 1 stream")
    left.set_xlabel("simultaneous streams")
    left.set_ylabel("audio seconds per wall second")
    left.set_ylim(bottom=0)
    left.set_xticks(streams)
    left.legend()
    for key, style in (("p50", "o-"), ("p95", "s--")):
        values = [level["first_audio"][key] for level in levels]
        right.plot(
            streams, [v if v is not None else float("nan") for v in values], style, label=f"first audio {key}"
        )
    right.set_xlabel("simultaneous streams")
    right.set_ylabel("time to first audio (s)")
    right.set_xticks(streams)
    right.set_ylim(bottom=0)
    right.legend()
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def plot_memory(memory_raw: dict[str, Any], title: str, path: Path) -> None:
    timeline = memory_raw["timeline"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.axhline(memory_raw["before"]["rss_mib"], color="#888888", linestyle="--", label="idle before")
    ax.axhline(memory_raw["after"]["rss_mib"], color="#d62728", linestyle=":", label="idle after")
    ax.plot([s["t_s"] for s in timeline], [s["rss_mib"] for s in timeline], ".-", label="during the requests")
    ax.set_xlabel("seconds into the memory run")
    ax.set_ylabel("RSS of the server tree (MiB)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    _save(fig, path)


def plot_all(result: dict[str, Any], raw: dict[str, Any], out: Path) -> list[str]:
    """Write the PNGs into `out`; return their file names."""
    figures = result["figures"]
    machine = result["machine"]
    stamp = f"{machine['cpu_model']}, {machine['logical_cores']} cores, {result['started_utc']}"
    plot_first_audio(
        figures["time_to_first_audio"], f"Time to first audio ({stamp})", out / "first_audio.png"
    )
    plot_concurrency(figures["concurrency"], f"Concurrency, medium text ({stamp})", out / "concurrency.png")
    plot_memory(raw["memory"], f"Server tree memory ({stamp})", out / "memory.png")
    plot_goodput(figures["goodput"], f"Listeners per worker, edf and fifo ({stamp})", out / "goodput.png")
    return ["first_audio.png", "concurrency.png", "memory.png", "goodput.png"]


def plot_goodput(figure: dict[str, Any], title: str, path: Path) -> None:
    """Good share and p95 first audio against offered load: one row per worker, one line per policy."""
    scenarios = figure["scenarios"]
    fig, axes = plt.subplots(len(scenarios), 2, figsize=(9, 3.2 * len(scenarios)), squeeze=False)
    for (name, scenario), (good_ax, first_ax) in zip(scenarios.items(), axes, strict=True):
        for policy, data in scenario["policies"].items():
            runs = sorted(data["open_loop"].values(), key=lambda run: run["load"])
            loads = [run["load"] * 100 for run in runs]
            good_ax.plot(
                loads, [(run.get("good_share") or 0) * 100 for run in runs], marker="o", label=policy
            )
            first_ax.plot(loads, [run["first_audio_s"]["p95"] for run in runs], marker="o", label=policy)
        good_ax.set(xlabel="offered load, % of capacity", ylabel="good streams, %", ylim=(0, 105), title=name)
        first_ax.set(xlabel="offered load, % of capacity", ylabel="first audio p95, s", title=name)
        for ax in (good_ax, first_ax):
            ax.grid(alpha=0.3)
            ax.legend()
    fig.suptitle(title, fontsize=9)
    _save(fig, path)
