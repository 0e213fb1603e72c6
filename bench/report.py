"""The readable table (Markdown, printed and saved), and the result files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .agent_report import agent_table, agent_target_lines
from .batching_report import batching_table
from .engine_figures import engine_tables, engine_target_lines
from .goodput_report import goodput_tables, scale_table
from .plan import SIZES

__all__ = ["print_json", "render_table", "write_json"]


def _n(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _pp(summary: dict[str, Any] | None, digits: int = 2, scale: float = 1.0) -> str:
    """'p50 / p95', or '–'."""
    if not summary or summary.get("p50") is None:
        return "–"
    return f"{summary['p50'] * scale:.{digits}f} / {summary['p95'] * scale:.{digits}f}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _header(result: dict[str, Any]) -> list[str]:
    machine, plan = result["machine"], result["plan"]
    versions, git = machine["versions"], machine["git"]
    revision = str(git["commit"])[:10] + (" with uncommitted changes" if git["dirty"] else "")
    texts = ", ".join(f"{s} {plan['texts'][s]['chars']} chars" for s in SIZES)
    return [
        f"### tts-api benchmark ({plan['name']}), {result['started_utc']}",
        "",
        f"- Machine: {machine['cpu_model']} ({machine['cpu_family_model']}), "
        f"{machine['logical_cores']} logical cores, {machine['memory_gib']} GiB; torch {versions['torch']}, "
        f"{machine['torch_threads']} threads (server worker: {machine['server_torch_threads']}); "
        f"kokoro {versions['kokoro']}, litserve {versions['litserve']}; git {revision}",
        f"- Command: `{result['command']}`; took {_duration(result['duration_s'])}; "
        f"other programs used {result['load']['other_cpu_share']:.0%} of the CPU meanwhile"
        f"{_steal(result['load'])}",
        f"- Texts: {texts}; voice af_heart, seed 0; p50 / p95 over the runs after warm-up",
        "",
    ]


def _steal(load: dict[str, Any]) -> str:
    """The hypervisor's share, where it withheld any (results before it was measured have none)."""
    steal = load.get("steal_share", 0.0)
    return f", and the hypervisor withheld {steal:.0%} more (steal)" if steal >= 0.005 else ""


def render_table(result: dict[str, Any]) -> str:
    """Every figure as a Markdown table, headed by the machine and the command; the targets below."""
    figures = result["figures"]
    lines = _header(result)
    for table in (
        _first_audio_table(figures["time_to_first_audio"]),
        _rtf_table(figures["real_time_factor"]),
        _concurrency_table(figures["concurrency"]),
        _overhead_table(figures["server_overhead"]),
        _memory_table(figures["memory"]),
        _cancellation_table(figures["cancellation"]),
        *goodput_tables(figures["goodput"]),
        scale_table(figures["scale"]),
        *engine_tables(figures["engines"], figures.get("quality")),
        *([agent_table(figures["agents"], result["targets"])] if "agents" in figures else []),
        *([batching_table(figures["batching"])] if "batching" in figures else []),
    ):
        lines += [*table, ""]
    targets = result["targets"]
    first, total = targets["long_first_audio_ratio"], targets["long_total_ratio"]
    lines.append(
        f"Targets (long text, pcm): first audio ≤ {first['max']}× bare: {_x(first['value'])} "
        f"({'met' if first['met'] else 'not met'}); total time ≤ {total['max']}× bare: "
        f"{_x(total['value'])} ({'met' if total['met'] else 'not met'})"
    )
    goodput = [(name, t) for name, t in targets.items() if name.startswith(("real_", "emulated_", "scale_"))]
    if goodput:
        lines.append("Targets (goodput, edf): " + "; ".join(f"{name} {_met(t)}" for name, t in goodput))
    lines += engine_target_lines(figures["engines"]["default"], targets)
    lines += agent_target_lines(targets)
    batching = [(name, t) for name, t in targets.items() if name.startswith("batched_")]
    if batching:
        lines.append("Targets (batching): " + "; ".join(f"{name} {_met(t)}" for name, t in batching))
    return "\n".join(lines) + "\n"


def _met(target: dict[str, Any]) -> str:
    return "met" if target["met"] else "not met"


def _first_audio_table(figure: dict[str, Any]) -> list[str]:
    rows = []
    for size, data in figure["sizes"].items():
        pcm, mp3 = data["server"]["pcm"], data["server"]["mp3"]
        rows.append(
            [
                f"{size} ({data['chars']} chars)",
                _pp(data["baseline"]),
                _pp(pcm),
                _x(data["ratio"]["pcm"]),
                _pp(mp3),
                _x(data["ratio"]["mp3"]),
                f"{data['baseline']['n']}/{pcm['n']}/{mp3['n']}",
            ]
        )
    header = ["input", "bare KPipeline", "server pcm", "ratio", "server mp3", "ratio", "n"]
    return ["**1. Time to first audio** (s, p50 / p95; ratio of p50s)", "", *_table(header, rows)]


def _rtf_table(figure: dict[str, Any]) -> list[str]:
    rows = []
    for size, data in figure["sizes"].items():
        rows.append(
            [
                size,
                f"{_n(data['audio_s']['p50'], 1)} / {_n(data['server_audio_s']['p50'], 1)}",
                _pp(data["baseline"]),
                _pp(data["server"]["pcm"]),
                _x(data["ratio"]["pcm"]),
                _pp(data["server"]["mp3"]),
                _x(data["ratio"]["mp3"]),
                _x(data["total_ratio"]["pcm"]),
                f"{data['baseline']['n']}/{data['server']['pcm']['n']}/{data['server']['mp3']['n']}",
            ]
        )
    header = [
        "input",
        "audio s (bare / server)",
        "bare KPipeline",
        "server pcm",
        "ratio",
        "server mp3",
        "ratio",
    ]
    header += ["total time, pcm / bare", "n"]
    return ["**2. Real-time factor** (wall s / audio s, p50 / p95)", "", *_table(header, rows)]


def _concurrency_table(figure: dict[str, Any]) -> list[str]:
    rows = [["bare KPipeline, 1", _n(figure["baseline"]["audio_s_per_wall_s"]["p50"]), "1.00×", "–", "–"]]
    for level in figure["levels"]:
        rows.append(
            [
                str(level["streams"]),
                _n(level["audio_s_per_wall_s"]),
                _x(level["ratio"]),
                _pp(level["first_audio"], 1),
                str(level["errors"]),
            ]
        )
    header = ["streams", "audio s per wall s", "vs bare", "first audio p50 / p95 (s)", "errors"]
    return ["**3. Concurrency** (medium text, pcm, all streams sent at once)", "", *_table(header, rows)]


def _overhead_table(figure: dict[str, Any]) -> list[str]:
    ms = 1000.0
    idle, loaded, edge = figure["delivery_idle"], figure["delivery_under_concurrency"], figure["client_side"]
    base, added = figure["baseline"], figure["added_to_first_audio_short"]

    def row(name: str, s: dict[str, Any] | None, n_key: str = "n") -> list[str]:
        if not s:
            return [name, "–", "–", "–", "–"]
        return [
            name,
            _n(_scaled(s["p50"], ms), 1),
            _n(_scaled(s["p95"], ms), 1),
            _n(_scaled(s["mean"], ms), 1),
            str(int(s[n_key])),
        ]

    rows = [
        row("worker yield → HTTP process sends it, idle (tts_delivery_seconds, from buckets)", idle, "count"),
        row("same, during the concurrency sweep", loaded, "count"),
        row("client-side: first audio at client − server's own first-audio time", edge),
        row("baseline: bare pipeline time per chunk", base),
    ]
    return [
        "**4. Server overhead per chunk** (ms)",
        "",
        *_table(["measure", "p50", "p95", "mean", "n"], rows),
        "",
        "Added to the short text's first audio (client, over the bare pipeline's first result): "
        f"tts-api {_n(_scaled(added['tts_api_s'], ms), 0)} ms, "
        f"plain LitServe {_n(_scaled(added['plain_litserve_s'], ms), 0)} ms.",
    ]


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _memory_table(figure: dict[str, Any]) -> list[str]:
    rows = []
    for key, name in (("rss_mib", "RSS"), ("uss_mib", "USS")):
        rows.append(
            [
                name,
                _n(figure["baseline"][key], 0),
                _n(figure["after"][key], 0),
                _n(figure["growth_mib"][key], 1),
                _n(figure["growth_per_request_kib"][key], 1),
            ]
        )
    abandoned = figure["abandoned"]
    title = (
        f"**5. Memory of the server process tree** (MiB; {figure['requests']} mixed requests: "
        f"all six formats, {abandoned.get('after_send', 0)} abandoned while queued, "
        f"{abandoned.get('after_first_audio', 0)} after the first audio, {figure['whole_file']} whole files; "
        f"{figure['errors']} errors)"
    )
    header = ["memory", "before", "after", "growth", "per request (KiB)"]
    lines = [title, "", *_table(header, rows)]
    small = figure.get("small_requests")
    if small:
        cases = "; ".join(f"{name}: {_n(growth, 0)}" for name, growth in small["cases"].items())
        lines += [
            "",
            f"One small request that asks for much, the largest growth of any process over an "
            f"ordinary long text's peak (MiB; target ≤ 100): {cases}; {small['errors']} errors.",
        ]
    return lines


def _busy(data: dict[str, Any], window_s: float | None) -> str:
    if data["busy_after_abandon_s"]["n"] == 0 and data["still_busy_when_stopped"]:
        return f"> {_n(window_s, 0)} (still busy)"
    return _pp(data["busy_after_abandon_s"], 1)


def _cancellation_table(figure: dict[str, Any]) -> list[str]:
    rows = []
    names = {"tts_api": "tts-api", "plain_litserve": "plain LitServe (no cancel)"}
    for key, data in figure["servers"].items():
        rows.append(
            [
                names.get(key, key),
                _pp(data["cpu_s_after_abandon"]),
                _n(data["idle_cpu_s"]),
                _busy(data, figure["window_s"]),
                _pp(data["first_audio_after_abandon"]),
                _pp(data["first_audio_idle"]),
                _x(data["follow_up_ratio"]),
            ]
        )
    window = _n(figure["window_s"], 0)
    header = [
        "server",
        f"CPU-s in {window} s after abandon",
        "idle CPU-s",
        "busy after abandon (s)",
        "next request first audio (s)",
        "idle first audio (s)",
        "ratio",
    ]
    return [
        "**6. Cancellation** (long pcm stream abandoned after its first audio; next request: the short text)",
        "",
        *_table(header, rows),
    ]


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")


def print_json(result: dict[str, Any], out: Path | None = None) -> None:
    """`result` as JSON on stdout, and in `out` too when given (the stand-alone measurements' output)."""
    if out is not None:
        write_json(out, result)
    sys.stdout.write(json.dumps(result, indent=1, default=str) + "\n")
