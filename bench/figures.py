"""Turn a run's raw samples into the figures: summaries, baselines and ratios."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

from .agent_report import agent_targets, agents_figure
from .batching_report import batching_figure, batching_targets
from .engine_figures import engine_targets, engines_figure, quality_figure
from .goodput_report import goodput_figure, goodput_targets, scale_figure, scale_targets
from .plan import FORMATS, SIZES, Plan
from .stats import histogram_summary, ratio, summarize

__all__ = ["build_figures", "build_targets"]

LONG_FIRST_AUDIO_MAX_RATIO = 0.25  # the latency issue's target
LONG_TOTAL_MAX_RATIO = 1.1


def _p50(summary: dict[str, Any]) -> float | None:
    return summary["p50"]


def _ok(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["error"] is None and r["status"] == 200]


def build_figures(raw: dict[str, Any], plan: Plan) -> dict[str, Any]:
    idle = raw["idle"]
    return {
        "time_to_first_audio": _first_audio(idle, raw["cancellation"]["tts_api"], plan),
        "real_time_factor": _real_time_factor(idle, plan),
        "concurrency": _concurrency(raw["concurrency"], idle),
        "server_overhead": _overhead(idle, raw["concurrency"], raw["cancellation"]["plain_litserve"]),
        "memory": _memory(raw["memory"]),
        "cancellation": _cancellation(raw["cancellation"], idle),
        "goodput": goodput_figure(raw["goodput"]),
        "scale": scale_figure(raw["scale"], raw.get("batched_scale")),
        "engines": engines_figure(raw["engines"], idle),
        **({"quality": quality_figure(raw["quality"], plan.quality_sentences)} if "quality" in raw else {}),
        **({"agents": agents_figure(raw["agents"])} if "agents" in raw else {}),
        **(
            {"batching": batching_figure(raw["batching"], raw.get("batching_quality"))}
            if "batching" in raw
            else {}
        ),
    }


def _long_trial_streams(cancellation: dict[str, Any]) -> list[dict[str, Any]]:
    """Figure 6's abandoned long pcm streams: each also started on an idle server."""
    trials = cancellation["follow_up_trials"] + cancellation["cpu_trials"]
    return [t["abandoned"] for t in trials]


def _first_audio(idle: dict[str, Any], tts_cancellation: dict[str, Any], plan: Plan) -> dict[str, Any]:
    sizes = {}
    for size in SIZES:
        bare = summarize([b["first_result_s"] for b in idle["bare"] if b["size"] == size])
        server: dict[str, Any] = {}
        for response_format in FORMATS:
            records = [
                r
                for r in _ok(idle["requests"])
                if r["size"] == size and r["response_format"] == response_format
            ]
            sources = ["idle request"] * len(records)
            if size == "long" and response_format == "pcm":
                extra = _ok(_long_trial_streams(tts_cancellation))
                records += extra
                sources += ["figure 6 trial (abandoned after first audio)"] * len(extra)
            server[response_format] = {**summarize([r["first_audio_s"] for r in records]), "sources": sources}
        sizes[size] = {
            "chars": len(plan.texts[size]),
            "baseline": bare,
            "server": server,
            "ratio": {f: ratio(_p50(server[f]), _p50(bare)) for f in FORMATS},
            "ratio_p95": {f: ratio(server[f]["p95"], bare["p95"]) for f in FORMATS},
        }
    return {
        "unit": "s",
        "what": "client: request sent -> first body bytes of the streamed response; "
        "baseline: next(iter(KPipeline(text))) in-process",
        "sizes": sizes,
    }


def _real_time_factor(idle: dict[str, Any], plan: Plan) -> dict[str, Any]:
    sizes = {}
    for size in SIZES:
        bare_runs = [b for b in idle["bare"] if b["size"] == size]
        bare = summarize([b["rtf"] for b in bare_runs])
        bare_total = summarize([b["total_s"] for b in bare_runs])
        server: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        for response_format in FORMATS:
            records = [
                r
                for r in _ok(idle["requests"])
                if r["size"] == size and r["response_format"] == response_format and r["abandoned"] == "never"
            ]
            server[response_format] = summarize(
                [r["total_s"] / r["audio_s"] if r["audio_s"] else None for r in records]
            )
            totals[response_format] = summarize([r["total_s"] for r in records])
        sizes[size] = {
            "chars": len(plan.texts[size]),
            "audio_s": summarize([b["audio_s"] for b in bare_runs]),
            # The server trims Kokoro's edge silence and plans its own gaps: its audio is not the same length.
            "server_audio_s": summarize(
                [
                    r["audio_s"]
                    for r in _ok(idle["requests"])
                    if r["size"] == size and r["response_format"] == "pcm" and r["abandoned"] == "never"
                ]
            ),
            "baseline": bare,
            "server": server,
            "ratio": {f: ratio(_p50(server[f]), _p50(bare)) for f in FORMATS},
            "total_s": {"baseline": bare_total, **totals},
            "total_ratio": {f: ratio(_p50(totals[f]), _p50(bare_total)) for f in FORMATS},
        }
    return {
        "unit": "wall s / audio s",
        "what": "client: request sent -> last byte, over the audio it carried; baseline: the whole "
        "KPipeline iteration in-process. Only complete responses count (not those abandoned by design).",
        "sizes": sizes,
    }


def _concurrency(sweep: dict[str, Any], idle: dict[str, Any]) -> dict[str, Any]:
    bare_runs = [b for b in idle["bare"] if b["size"] == "medium"]
    baseline = summarize([b["audio_s"] / b["total_s"] for b in bare_runs if b["total_s"]])
    levels = []
    for level in sweep["levels"]:
        requests = level["requests"]
        audio = sum(r["audio_s"] or 0.0 for r in _ok(requests))
        throughput = audio / level["wall_s"] if level["wall_s"] else None
        levels.append(
            {
                "streams": level["streams"],
                "audio_s": audio,
                "wall_s": level["wall_s"],
                "audio_s_per_wall_s": throughput,
                "ratio": ratio(throughput, _p50(baseline)),
                "first_audio": summarize([r["first_audio_s"] for r in requests]),
                "errors": len(requests) - len(_ok(requests)),
                "error_messages": sorted({r["error"] for r in requests if r["error"]}),
            }
        )
    return {
        "what": "N pcm streams of the medium text sent at once; audio seconds received per wall second "
        "from the first send to the last byte; baseline: the bare pipeline's audio s per wall s",
        "baseline": {"audio_s_per_wall_s": baseline},
        "levels": levels,
        "ratio": {str(level["streams"]): level["ratio"] for level in levels},
    }


def _six_streams(figure: dict[str, Any]) -> float | None:
    """Six concurrent medium streams' audio s per wall s over the bare pipeline's single stream."""
    return figure["ratio"].get("6")


def _overhead(idle: dict[str, Any], sweep: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any]:
    delivery = histogram_summary(idle["delivery_histogram"])
    loaded = histogram_summary(sweep["histograms"]["tts_delivery_seconds"]) if sweep["histograms"] else None
    both = [
        r
        for r in _ok(idle["requests"])
        if r["server"].get("first_audio_s") is not None and r["first_audio_s"]
    ]
    edge = summarize([r["first_audio_s"] - r["server"]["first_audio_s"] for r in both])
    chunk_times = []
    for run in idle["bare"]:
        marks = [0.0, *run["chunk_s"]]
        chunk_times += [b - a for a, b in pairwise(marks)]
    baseline = summarize(chunk_times)
    bare_short = summarize([b["first_result_s"] for b in idle["bare"] if b["size"] == "short"])
    short_pcm = [r for r in _ok(idle["requests"]) if r["size"] == "short" and r["response_format"] == "pcm"]
    # Like for like only if the server, too, synthesized the short text as one chunk.
    single_chunk = all(r["server"].get("chunks_synthesized") == 1 for r in short_pcm)
    ours_short = summarize([r["first_audio_s"] for r in short_pcm] if single_chunk else [])
    plain_short = summarize([r["first_audio_s"] for r in _ok(plain["idle_first_audio"])])
    # Compared with bare passes made side by side with its samples, not minutes earlier.
    bare_beside_plain = summarize([b["first_result_s"] for b in plain["baseline_runs"]])
    return {
        "unit": "s",
        "what": "tts_delivery_seconds: a worker yields an encoded audio chunk -> the HTTP process sends it. "
        "p50/p95 interpolated from the histogram buckets (1 ms resolution at best), mean from _sum/_count; "
        "scraped before and after the idle requests of figures 1-2, and around the concurrency sweep",
        "p50": delivery["p50"],
        "p95": delivery["p95"],
        "samples": delivery["buckets"],
        "delivery_idle": delivery,
        "delivery_under_concurrency": loaded,
        "client_side": {
            "what": "per idle request: client time to first audio minus the server's own "
            "tts_time_to_first_audio_seconds for it (request received -> first audio at the HTTP process): "
            "the HTTP hops in and out, seen from the client",
            **edge,
        },
        "added_to_first_audio_short": {
            "what": "client time to first audio of the short pcm request minus the bare pipeline's first "
            "result on it (p50s), each against bare passes interleaved with its own samples; for tts-api "
            "only when it synthesized the short text as one chunk",
            "tts_api_single_chunk": single_chunk,
            "tts_api_s": _diff(_p50(ours_short), _p50(bare_short)),
            "plain_litserve_s": _diff(_p50(plain_short), _p50(bare_beside_plain)),
        },
        "baseline": {"what": "bare pipeline time to synthesize one chunk", **baseline},
        "ratio": ratio(delivery["p50"], _p50(baseline)),
    }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _memory(memory: dict[str, Any]) -> dict[str, Any]:
    before, after = memory["before"], memory["after"]
    requests = memory["requests"]
    growth = {k: after[k] - before[k] for k in ("rss_mib", "uss_mib")}
    errors = [r for r in requests if r["abandoned"] != "after_send" and r["error"] is not None]
    return {
        "what": "resident (RSS) and unique (USS) memory summed over the server's whole process tree, "
        "idle, before and after the mixed requests",
        "requests": len(requests),
        "formats": dict(Counter(r["response_format"] for r in requests)),
        "abandoned": dict(Counter(r["abandoned"] for r in requests)),
        "whole_file": sum(not r["stream"] for r in requests),
        "errors": len(errors),
        "baseline": {"rss_mib": before["rss_mib"], "uss_mib": before["uss_mib"]},
        "after": {"rss_mib": after["rss_mib"], "uss_mib": after["uss_mib"]},
        "growth_mib": growth,
        "growth_per_request_kib": {k: v * 1024 / max(1, len(requests)) for k, v in growth.items()},
        "ratio": ratio(after["rss_mib"], before["rss_mib"]),
        "rss_during": summarize([s["rss_mib"] for s in memory["timeline"]]),
        "processes": {"before": before["processes"], "after": after["processes"]},
        "idle_gauges_after": memory["idle_gauges_after"],
        "wall_s": memory["wall_s"],
        "small_requests": _small_requests(memory.get("small")),
    }


SMALL_REQUEST_MAX_GROWTH_MIB = 100.0  # the limits issue's target


def _small_requests(small: dict[str, Any] | None) -> dict[str, Any] | None:
    if small is None:
        return None
    return {
        "what": "per request of at most 64 KB that asks for much, the most any process of the server grew "
        "above its own peak while an ordinary long text was made (MiB)",
        "cases": {name: case["growth_mib"] for name, case in small["cases"].items()},
        "errors": sum(case["status"] != 200 for case in small["cases"].values()),
    }


def _cancellation(cancellation: dict[str, Any], idle: dict[str, Any]) -> dict[str, Any]:
    idle_short_pcm = [
        r["first_audio_s"]
        for r in _ok(idle["requests"])
        if r["size"] == "short" and r["response_format"] == "pcm"
    ]
    servers: dict[str, dict[str, Any]] = {}
    for key, data in cancellation.items():
        idle_samples = [r["first_audio_s"] for r in _ok(data["idle_first_audio"])] or idle_short_pcm
        idle_first = summarize(idle_samples)
        after = summarize([t["follow_up"]["first_audio_s"] for t in data["follow_up_trials"]])
        servers[key] = {
            "cpu_s_after_abandon": summarize([t["cpu_s"] for t in data["cpu_trials"]]),
            "idle_cpu_s": data["idle_cpu"]["cpu_s"] if data["idle_cpu"] else None,
            "busy_after_abandon_s": summarize([t["busy_after_abandon_s"] for t in data["cpu_trials"]]),
            # not waited for: the server was stopped while still synthesizing the abandoned text
            "still_busy_when_stopped": any(
                t["busy_after_abandon_s"] is None and not t["waited"] for t in data["cpu_trials"]
            ),
            "first_audio_idle": idle_first,
            "first_audio_after_abandon": after,
            "follow_up_ratio": ratio(_p50(after), _p50(idle_first)),
            "trials": {"follow_up": data["follow_up_trials"], "cpu": data["cpu_trials"]},
        }
    ours, plain = servers["tts_api"], servers["plain_litserve"]
    return {
        "what": "a long pcm stream abandoned right after its first audio. cpu_s: CPU seconds of the whole "
        "server process tree in the window after the abandon (separate trial, nothing else sent); "
        "follow_up_ratio: time to first audio of the short pcm request sent right after the abandon, "
        "over its time to first audio on an idle server",
        "window_s": ours["trials"]["cpu"][0]["window_s"] if ours["trials"]["cpu"] else None,
        "servers": servers,
        "baseline": {
            "server": "plain_litserve",
            "cpu_s_after_abandon": _p50(plain["cpu_s_after_abandon"]),
            "follow_up_ratio": plain["follow_up_ratio"],
        },
        "ratio": {
            "cpu_s_after_abandon": ratio(
                _p50(ours["cpu_s_after_abandon"]), _p50(plain["cpu_s_after_abandon"])
            ),
            "follow_up_ratio": ratio(ours["follow_up_ratio"], plain["follow_up_ratio"]),
        },
    }


def build_targets(figures: dict[str, Any]) -> dict[str, Any]:
    """The issues' targets: the latency issue's on the long text, the goodput issue's, the engine issue's,
    the voice-agent issue's."""
    first = figures["time_to_first_audio"]["sizes"]["long"]["ratio"]["pcm"]
    total = figures["real_time_factor"]["sizes"]["long"]["total_ratio"]["pcm"]
    small = figures["memory"].get("small_requests") or {"cases": {}}
    worst_small = max(small["cases"].values(), default=None)
    return {
        **goodput_targets(figures["goodput"]),
        "small_request_growth_mib": {
            "value": worst_small,
            "max": SMALL_REQUEST_MAX_GROWTH_MIB,
            "met": worst_small is not None and worst_small <= SMALL_REQUEST_MAX_GROWTH_MIB,
        },
        **scale_targets(figures["scale"]),
        **engine_targets(figures["engines"], figures.get("quality"), _six_streams(figures["concurrency"])),
        **agent_targets(figures.get("agents")),
        **batching_targets(figures.get("batching")),
        "long_first_audio_ratio": {
            "value": first,
            "max": LONG_FIRST_AUDIO_MAX_RATIO,
            "met": first is not None and first <= LONG_FIRST_AUDIO_MAX_RATIO,
        },
        "long_total_ratio": {
            "value": total,
            "max": LONG_TOTAL_MAX_RATIO,
            "met": total is not None and total <= LONG_TOTAL_MAX_RATIO,
        },
    }
