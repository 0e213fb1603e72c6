"""Figures 10-11: each engine variant's speed against the bare pipeline, what trimming the edge silence
saves, and how each variant sounds (DNSMOS, word error); their tables and the engine issue's targets."""

from __future__ import annotations

from collections.abc import Iterable
from statistics import mean
from typing import Any

from .stats import ratio, summarize

__all__ = ["engine_tables", "engine_target_lines", "engine_targets", "engines_figure", "quality_figure"]

CAPACITY_AGREEMENT = (0.85, 1.15)  # the limits issue: the gauge within 15 % of the long text's pace
SHORT_FIRST_AUDIO_MAX_RATIO = 0.35  # the engine issue's targets, against the bare pipeline
LONG_RTF_MAX_RATIO = 0.55
CAPACITY_MIN_GAIN = 1.3  # long-text audio s per s with trimming, over the same without
SIX_STREAMS_MIN_RATIO = 1.6  # six concurrent medium streams, over the bare pipeline's single stream
OVRL_MEAN_TOLERANCE = 0.05
OVRL_WORST_TOLERANCE = 0.2
WER_TOLERANCE = 0.02
UNTRIMMED = "untrimmed"


def _ok(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["error"] is None and r["status"] == 200]


def _row(short: list[Any], short_bare: list[Any], long: list[Any], long_bare: list[Any]) -> dict[str, Any]:
    first = summarize([r["first_audio_s"] for r in _ok(short)])
    bare_first = summarize([b["first_result_s"] for b in short_bare])
    rtf = summarize([r["total_s"] / r["audio_s"] for r in _ok(long) if r["audio_s"]])
    bare_rtf = summarize([b["rtf"] for b in long_bare])
    return {
        "short_first_audio_s": first,
        "short_first_audio_ratio": ratio(first["p50"], bare_first["p50"]),
        "long_rtf": rtf,
        "long_rtf_ratio": ratio(rtf["p50"], bare_rtf["p50"]),
        "bare_short_first_result_s": bare_first,
        "bare_long_rtf": bare_rtf,
    }


def engines_figure(raw: dict[str, Any], idle: dict[str, Any]) -> dict[str, Any]:
    """Figure 10: per variant, one-sentence first audio and long-text RTF over the bare pipeline's."""
    short = [r for r in idle["requests"] if r["size"] == "short" and r["response_format"] == "pcm"]
    long = [r for r in idle["requests"] if r["size"] == "long" and r["response_format"] == "pcm"]
    default = raw["default"] or "default"
    engines = {
        default: {
            "source": "figures 1-2 (the default server)",
            "capacity": raw.get("capacity", {}).get("default"),
            **_row(
                short,
                [b for b in idle["bare"] if b["size"] == "short"],
                [r for r in long if r["abandoned"] == "never"],
                [b for b in idle["bare"] if b["size"] == "long"],
            ),
        }
    }
    for variant, flag in (
        ("torch", "--engine torch"),
        ("bf16", "--engine bf16"),
        ("onnx", "--engine onnx"),
        (UNTRIMMED, "--no-trim-silence"),
    ):
        data = raw.get(variant)
        if data is not None:
            name = f"{data['engine']}, {UNTRIMMED}" if variant == UNTRIMMED else data["engine"]
            engines.setdefault(
                name or variant,
                {
                    "source": f"figure 10 ({flag})",
                    "capacity": data.get("capacity"),
                    **_row(data["short"], data["short_bare"], data["long"], data["long_bare"]),
                },
            )
    two = raw.get("two_workers")
    bare_rates = [b["audio_s"] / b["total_s"] for b in idle["bare"] if b["size"] == "medium" and b["total_s"]]
    if two is not None:
        level = two["levels"][0]
        audio = sum(r["audio_s"] or 0.0 for r in _ok(level["requests"]))
        rate = audio / level["wall_s"] if level["wall_s"] else None
        two_workers = {
            "streams": level["streams"],
            "audio_s_per_wall_s": rate,
            "errors": len(level["requests"]) - len(_ok(level["requests"])),
            "capacity": two.get("capacity"),
            # over the bare pipeline's single stream of the same text, as figure 3's ratios
            "ratio": ratio(rate, summarize(bare_rates)["p50"]),
        }
    trimmed, untrimmed = engines[default], raw.get(UNTRIMMED)
    gain = None
    if untrimmed is not None:
        untrimmed_row = _row(
            untrimmed["short"], untrimmed["short_bare"], untrimmed["long"], untrimmed["long_bare"]
        )
        # Each side over its own interleaved bare passes, so a drift of the machine cancels out.
        gain = ratio(untrimmed_row["long_rtf_ratio"], trimmed["long_rtf_ratio"])
    return {
        "what": "one-sentence (short) pcm first audio over the bare KPipeline's first result; long-text pcm "
        "wall/audio over the bare KPipeline's, each against bare passes interleaved with its own samples; "
        "capacity: the worker's own start-up measure (tts_worker_capacity, audio s per s)",
        "default": raw["default"],
        "engines": engines,
        "capacity_gain_from_trimming": gain,
        "two_workers": two_workers if two is not None else None,
    }


def _means(scores: list[dict[str, Any]]) -> dict[str, float]:
    return {key: mean(s[key] for s in scores) for key in ("ovrl", "sig", "p808", "wer")}


def quality_figure(raw: dict[str, Any], sentences: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Figure 11: per variant, mean DNSMOS and WER, and the sentence furthest below the bare pipeline's."""
    bare = raw["bare"]
    variants = {}
    for name, scores in raw["variants"].items():
        gaps = [s["ovrl"] - b["ovrl"] for s, b in zip(scores, bare, strict=True)]
        worst = min(range(len(gaps)), key=gaps.__getitem__)
        variants[name] = {
            **_means(scores),
            "worst_gap": gaps[worst],
            "worst_sentence": sentences[worst][0],
            "worst_ovrl": scores[worst]["ovrl"],
        }
    return {
        "what": f"{len(bare)} sentences, af_heart, seed i; whole WAV from each server variant and the bare "
        "KPipeline, both cut to their speech at the sample, DNSMOS P.835 OVRL/SIG and P.808 averaged over "
        "margins of 0.2-0.4 s; "
        "PocketSphinx word error rate against the sentence as spoken",
        "bare": _means(bare),
        "variants": variants,
    }


def engine_targets(
    engines: dict[str, Any], quality: dict[str, Any] | None, six: float | None
) -> dict[str, Any]:
    """The engine issue's targets, on the default variant."""
    row = engines["engines"].get(engines["default"] or "default")
    if row is None:
        return {}
    first, rtf, gain = (
        row["short_first_audio_ratio"],
        row["long_rtf_ratio"],
        engines["capacity_gain_from_trimming"],
    )
    targets: dict[str, Any] = {
        "short_first_audio_ratio": _at_most(first, SHORT_FIRST_AUDIO_MAX_RATIO),
        "long_rtf_ratio": _at_most(rtf, LONG_RTF_MAX_RATIO),
        "capacity_gain_from_trimming": _at_least(gain, CAPACITY_MIN_GAIN),
        "six_streams_ratio": _at_least(six, SIX_STREAMS_MIN_RATIO),
    }
    # The capacity gauge (what tts_load divides by) against the pace the long text was made at.
    capacity, long_rtf = row.get("capacity"), row["long_rtf"]["p50"]
    agreement = capacity * long_rtf if capacity and long_rtf else None
    targets["capacity_vs_long_text"] = {
        "value": agreement,
        "range": CAPACITY_AGREEMENT,
        "met": agreement is not None and CAPACITY_AGREEMENT[0] <= agreement <= CAPACITY_AGREEMENT[1],
    }
    if quality is not None and engines["default"] in quality["variants"]:
        ours, bare = quality["variants"][engines["default"]], quality["bare"]
        targets["ovrl_mean_gap"] = _at_least(ours["ovrl"] - bare["ovrl"], -OVRL_MEAN_TOLERANCE)
        targets["ovrl_worst_gap"] = _at_least(ours["worst_gap"], -OVRL_WORST_TOLERANCE)
        targets["wer_gap"] = _at_most(ours["wer"] - bare["wer"], WER_TOLERANCE)
    return targets


def _at_most(value: float | None, limit: float) -> dict[str, Any]:
    return {"value": value, "max": limit, "met": value is not None and value <= limit}


def _at_least(value: float | None, limit: float) -> dict[str, Any]:
    return {"value": value, "min": limit, "met": value is not None and value >= limit}


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pp(summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("p50") is None:
        return "–"
    return f"{summary['p50']:.2f} / {summary['p95']:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def engine_tables(engines: dict[str, Any], quality: dict[str, Any] | None) -> list[list[str]]:
    """Figures 10 and 11 as Markdown."""
    rows = [
        [
            name + (" (default)" if name == engines["default"] else ""),
            f"{_pp(data['short_first_audio_s'])} s",
            _x(data["short_first_audio_ratio"]),
            _pp(data["long_rtf"]),
            _x(data["long_rtf_ratio"]),
            _f(data.get("capacity")),
            data["source"],
        ]
        for name, data in engines["engines"].items()
    ]
    header = ["engine", "one-sentence first audio p50 / p95", "× bare", "long RTF p50 / p95", "× bare"]
    tables = [
        [
            "**10. Engines** (" + engines["what"] + ")",
            "",
            *_table([*header, "capacity", "from"], rows),
            "",
            "Trimming the edge silence: long-text audio s per s "
            f"{_x(engines['capacity_gain_from_trimming'])} the same server's with `--no-trim-silence`.",
            *_two_workers_line(engines["two_workers"]),
        ]
    ]
    if quality is not None:
        bare = quality["bare"]
        qrows = [
            ["bare KPipeline", _f(bare["ovrl"]), _f(bare["sig"]), _f(bare["p808"]), _f(bare["wer"], 3), "–"]
        ]
        for name, data in quality["variants"].items():
            worst = f"{data['worst_gap']:+.2f} ({data['worst_sentence'][:40]})"
            qrows.append(
                [name, _f(data["ovrl"]), _f(data["sig"]), _f(data["p808"]), _f(data["wer"], 3), worst]
            )
        tables.append(
            [
                "**11. Speech quality** (" + quality["what"] + ")",
                "",
                *_table(["variant", "OVRL", "SIG", "P.808", "WER", "worst OVRL vs bare (sentence)"], qrows),
            ]
        )
    return tables


def _two_workers_line(two: dict[str, Any] | None) -> list[str]:
    if two is None:
        return []
    return [
        "",
        f"Two workers of one thread each (`--workers-per-device 2`), {two['streams']} medium streams at "
        f"once: {_f(two['audio_s_per_wall_s'])} audio s per s, {_x(two['ratio'])} the bare pipeline's single "
        f"stream (figure 3 has one worker of two threads); capacity {_f(two['capacity'])}; "
        f"{two['errors']} errors.",
    ]


def engine_target_lines(default: str | None, targets: dict[str, Any]) -> list[str]:
    """The engine issue's targets in one line each."""
    if "short_first_audio_ratio" not in targets:
        return []

    def met(name: str) -> str:
        return "met" if targets[name]["met"] else "not met"

    t = targets
    lines = [
        f"Targets (engine {default}): one-sentence first audio ≤ {SHORT_FIRST_AUDIO_MAX_RATIO}× bare: "
        f"{_x(t['short_first_audio_ratio']['value'])} ({met('short_first_audio_ratio')}); long-text RTF "
        f"≤ {LONG_RTF_MAX_RATIO}× bare: {_x(t['long_rtf_ratio']['value'])} ({met('long_rtf_ratio')}); "
        f"capacity ≥ {CAPACITY_MIN_GAIN}× untrimmed: {_x(t['capacity_gain_from_trimming']['value'])} "
        f"({met('capacity_gain_from_trimming')}); six medium streams ≥ {SIX_STREAMS_MIN_RATIO}× bare: "
        f"{_x(t['six_streams_ratio']['value'])} ({met('six_streams_ratio')})",
        f"Target (capacity gauge): tts_worker_capacity over the long text's audio s per s within "
        f"{CAPACITY_AGREEMENT[0]}-{CAPACITY_AGREEMENT[1]}: {_x(t['capacity_vs_long_text']['value'])} "
        f"({met('capacity_vs_long_text')})",
    ]
    if "ovrl_mean_gap" in t:
        lines.append(
            f"Targets (quality, {default}): mean OVRL ≥ bare − {OVRL_MEAN_TOLERANCE}: "
            f"{t['ovrl_mean_gap']['value']:+.3f} ({met('ovrl_mean_gap')}); no sentence more than "
            f"{OVRL_WORST_TOLERANCE} below: worst {t['ovrl_worst_gap']['value']:+.2f} "
            f"({met('ovrl_worst_gap')}); "
            f"mean WER ≤ bare + {WER_TOLERANCE}: {t['wer_gap']['value']:+.3f} ({met('wer_gap')})"
        )
    return lines
