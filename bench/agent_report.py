"""Figure 12 from its raw samples: voice agents' first audio, flushes, barge-ins, quality and conversations
at once; the voice-agent issue's targets, and the figure's table."""

from __future__ import annotations

from statistics import mean
from typing import Any

from .stats import ratio, summarize

__all__ = ["agent_table", "agent_target_lines", "agent_targets", "agents_figure"]

STREAMED_FIRST_AUDIO_MAX_RATIO = 0.75  # over waiting for the sentence end, then POST
FLUSH_FIRST_AUDIO_MAX_RATIO = 1.1  # over the HTTP route's for the phrase
BARGE_IN_MAX_CPU_S = 0.3  # the server tree's, in the window after close_context
BARGE_IN_NEXT_MAX_RATIO = 1.2  # the next context's first audio over a fresh socket's
OVRL_TOLERANCE = 0.05  # streamed in against the same text whole
WER_TOLERANCE = 0.02
CONVERSATION_FIRST_AUDIO_MAX_RATIO = 3.0  # over a lone conversation's
CONVERSATION_MAX_GAP_S = 0.1
TARGETS = (
    "agent_streamed_first_audio_ratio",
    "agent_flush_first_audio_ratio",
    "agent_barge_in_audio_after_final",
    "agent_barge_in_cpu_s",
    "agent_barge_in_next_ratio",
    "agent_ovrl_gap",
    "agent_wer_gap",
    "agent_conversations_first_audio_ratio",
    "agent_conversations_gap_s",
)


def agents_figure(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "what": "ElevenLabs multi-stream-input, pcm_24000, auto_mode=false; replies sent a word at a time at "
        f"{raw['words_per_s']:g} words/s with a flush after each sentence; first audio from the first text "
        "message. HTTP agent: waits for the first sentence's last word, then POST /v1/audio/speech (stream, "
        "pcm) for that sentence",
        "words_per_s": raw["words_per_s"],
        "first_audio": _first_audio(raw["replies"]),
        "flush": _flush(raw["flushes"]),
        "barge_in": _barge_in(raw["barge_ins"]),
        "quality": _quality(raw["replies"]),
        "conversations": _conversations(raw["conversations"]),
    }


def _first_audio(replies: list[dict[str, Any]]) -> dict[str, Any]:
    streamed = [r["streamed"]["first_audio_s"] for r in replies]
    http = [r["http_first_audio_s"] if r["http_error"] is None else None for r in replies]
    waited = [None if h is None else r["wait_s"] + h for r, h in zip(replies, http, strict=True)]
    ratios = summarize([ratio(s, w) for s, w in zip(streamed, waited, strict=True)])
    return {
        "what": "per reply (first sentence 15-20 words): streamed first audio over the HTTP agent's (the "
        "first sentence's words arriving + the HTTP first audio for it); ratio: p50 of the per-reply ratios",
        "replies": len(replies),
        "streamed": summarize(streamed),
        "waited": summarize(waited),
        "http_first_sentence": summarize(http),
        "wait_s": summarize([r["wait_s"] for r in replies]),
        "ratios": ratios,
        "ratio": ratios["p50"],
        "errors": sum(bool(r["streamed"]["errors"] or r["http_error"]) for r in replies),
    }


def _flush(flushes: list[dict[str, Any]]) -> dict[str, Any]:
    http = summarize([f["http_first_audio_s"] if f["http_error"] is None else None for f in flushes])
    opened = summarize([f["opened_first_audio_s"] for f in flushes])
    spoken = summarize([f["spoken_first_audio_s"] for f in flushes])
    ratios = {"opened": ratio(opened["p50"], http["p50"]), "spoken": ratio(spoken["p50"], http["p50"])}
    worst = None if None in ratios.values() else max(v for v in ratios.values() if v is not None)
    return {
        "what": "the phrase and a flush on a context opened 0.5 s before ('opened'), then again once it has "
        "spoken ('spoken'): text message -> first audio; HTTP: the same phrase, streamed pcm; ratio: the "
        "worse of the two p50s over the HTTP p50",
        "http": http,
        "opened": opened,
        "spoken": spoken,
        "ratios": ratios,
        "ratio": worst,
        "errors": sum(bool(f["errors"] or f["http_error"]) for f in flushes),
    }


def _barge_in(trials: list[dict[str, Any]]) -> dict[str, Any]:
    cpu = summarize([t["cpu_s"] for t in trials])
    fresh = summarize([t["fresh_first_audio_s"] for t in trials])
    following = summarize([t["next_first_audio_s"] for t in trials])
    # Counted only where the reply was cut and the server answered with isFinal; else unknown.
    answered = all(t["cut"] and t["final_after_close_s"] is not None for t in trials) and trials
    return {
        "what": "close_context mid-sentence (no flush before it) once audio came: audio of the context "
        "after the server's isFinal, the server tree's CPU seconds in the window after close_context, and "
        "the phrase on a new context of the same socket (first audio) over the same on a fresh socket",
        "trials": len(trials),
        "cut_at_s": summarize([t["cut_at_s"] for t in trials]),
        "audio_before_cut_s": summarize([t["audio_before_cut_s"] for t in trials]),
        "audio_after_close_s": summarize([t["audio_after_close_s"] for t in trials]),
        "final_after_close_s": summarize([t["final_after_close_s"] for t in trials]),
        "audio_messages_after_final": sum(t["audio_messages_after_final"] for t in trials)
        if answered
        else None,
        "window_s": trials[0]["window_s"] if trials else None,
        "cpu_s": cpu,
        "worst_cpu_s": cpu["max"],
        "fresh_first_audio_s": fresh,
        "next_first_audio_s": following,
        "next_ratio": ratio(following["p50"], fresh["p50"]),
        "errors": sum(bool(t["errors"]) for t in trials),
        "error_messages": sorted({e for t in trials for e in t["errors"]}),
    }


def _means(scores: list[dict[str, Any]]) -> dict[str, float] | None:
    if not scores:
        return None
    return {key: mean(s[key] for s in scores) for key in ("ovrl", "sig", "p808", "wer")}


def _quality(replies: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [r["scores"] for r in replies if r["scores"]["streamed"] is not None]
    streamed, whole = _means([s["streamed"] for s in scored]), _means([s["whole"] for s in scored])
    complete = streamed is not None and whole is not None and len(scored) == len(replies)
    return {
        "what": "each reply's streamed audio, and the same text asked whole (POST, wav), both cut to their "
        "speech (DNSMOS P.835 OVRL/SIG, P.808, PocketSphinx word error), means over the replies",
        "replies": len(replies),
        "streamed": streamed,
        "whole": whole,
        "ovrl_gap": streamed["ovrl"] - whole["ovrl"] if complete and streamed and whole else None,
        "wer_gap": streamed["wer"] - whole["wer"] if complete and streamed and whole else None,
    }


def _conversations(raw: dict[str, Any]) -> dict[str, Any]:
    lone = {c["text_index"]: c for c in raw["lone"]}
    together = raw["together"]
    ratios = [ratio(c["first_audio_s"], lone[c["text_index"]]["first_audio_s"]) for c in together]
    errors = sum(bool(c["errors"]) for c in together) + sum(bool(c["errors"]) for c in lone.values())
    clean = errors == 0 and together and None not in ratios
    return {
        "what": "conversations on their own sockets, all starting at once, each a three-sentence reply sent "
        "at the agents' pace: first audio over a lone conversation's of the same reply, and the longest a "
        "player starting at the first audio (real time) ran dry",
        "capacity_audio_s_per_s": raw["capacity"],
        "conversations": raw["conversations"],
        "wanted": raw["wanted"],
        "lone_first_audio_s": summarize([c["first_audio_s"] for c in lone.values()]),
        "first_audio_s": summarize([c["first_audio_s"] for c in together]),
        "worst_ratio": max(r for r in ratios if r is not None) if clean else None,
        "largest_gap_s": max(c["longest_underrun_s"] for c in together) if clean else None,
        "lone_largest_gap_s": max((c["longest_underrun_s"] for c in lone.values()), default=None),
        "audio_s": sum(c["audio_s"] for c in together),
        "errors": errors,
        "error_messages": sorted({e for c in [*together, *lone.values()] for e in c["errors"]}),
    }


def _at_most(value: float | None, limit: float) -> dict[str, Any]:
    return {"value": value, "max": limit, "met": value is not None and value <= limit}


def _at_least(value: float | None, limit: float) -> dict[str, Any]:
    return {"value": value, "min": limit, "met": value is not None and value >= limit}


def agent_targets(figure: dict[str, Any] | None) -> dict[str, Any]:
    """The voice-agent issue's targets."""
    if figure is None:
        return {}
    barge, quality, many = figure["barge_in"], figure["quality"], figure["conversations"]
    return {
        "agent_streamed_first_audio_ratio": _at_most(
            figure["first_audio"]["ratio"], STREAMED_FIRST_AUDIO_MAX_RATIO
        ),
        "agent_flush_first_audio_ratio": _at_most(figure["flush"]["ratio"], FLUSH_FIRST_AUDIO_MAX_RATIO),
        "agent_barge_in_audio_after_final": _at_most(barge["audio_messages_after_final"], 0),
        "agent_barge_in_cpu_s": _at_most(barge["worst_cpu_s"], BARGE_IN_MAX_CPU_S),
        "agent_barge_in_next_ratio": _at_most(barge["next_ratio"], BARGE_IN_NEXT_MAX_RATIO),
        "agent_ovrl_gap": _at_least(quality["ovrl_gap"], -OVRL_TOLERANCE),
        "agent_wer_gap": _at_most(quality["wer_gap"], WER_TOLERANCE),
        "agent_conversations_first_audio_ratio": _at_most(
            many["worst_ratio"], CONVERSATION_FIRST_AUDIO_MAX_RATIO
        ),
        "agent_conversations_gap_s": _at_most(many["largest_gap_s"], CONVERSATION_MAX_GAP_S),
    }


def _pp(summary: dict[str, Any] | None, unit: str = " s") -> str:
    if not summary or summary.get("p50") is None:
        return "–"
    return f"{summary['p50']:.2f} / {summary['p95']:.2f}{unit}"


def _f(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _met(target: dict[str, Any]) -> str:
    return "met" if target["met"] else "not met"


def agent_table(figure: dict[str, Any], targets: dict[str, Any]) -> list[str]:
    """Figure 12 as Markdown: one row per target."""
    first, flush, barge = figure["first_audio"], figure["flush"], figure["barge_in"]
    quality, many = figure["quality"], figure["conversations"]
    streamed, whole = quality["streamed"] or {}, quality["whole"] or {}
    window = _f(barge["window_s"], 0)
    n = many["conversations"]

    def row(name: str, ours: str, theirs: str, key: str, n: int | str) -> list[str]:
        target = targets[key]
        value = target["value"]
        shown = _x(value) if key.endswith("ratio") else _f(value, 3 if "gap" in key else 2)
        bound = f"≤ {target['max']}" if "max" in target else f"≥ {target['min']}"
        return [name, ours, theirs, shown, bound, _met(target), str(n)]

    rows = [
        row(
            "first audio, reply streamed in / waiting for the sentence end + POST",
            _pp(first["streamed"]),
            _pp(first["waited"]),
            "agent_streamed_first_audio_ratio",
            first["replies"],
        ),
        row(
            "first audio after a phrase's flush on an open context (opened / spoken) / POST",
            f"{_pp(flush['opened'])}; {_pp(flush['spoken'])}",
            _pp(flush["http"]),
            "agent_flush_first_audio_ratio",
            flush["http"]["n"],
        ),
        row(
            "barge-in: audio messages after isFinal (in flight after close_context)",
            f"{barge['audio_messages_after_final']} ({_pp(barge['audio_after_close_s'])})",
            "–",
            "agent_barge_in_audio_after_final",
            barge["trials"],
        ),
        row(
            f"barge-in: server CPU-s in {window} s after close_context (worst)",
            _pp(barge["cpu_s"], ""),
            "–",
            "agent_barge_in_cpu_s",
            barge["trials"],
        ),
        row(
            "barge-in: next context's first audio / a fresh socket's",
            _pp(barge["next_first_audio_s"]),
            _pp(barge["fresh_first_audio_s"]),
            "agent_barge_in_next_ratio",
            barge["trials"],
        ),
        row(
            "DNSMOS OVRL, streamed in / whole (difference)",
            _f(streamed.get("ovrl")),
            _f(whole.get("ovrl")),
            "agent_ovrl_gap",
            quality["replies"],
        ),
        row(
            "PocketSphinx WER, streamed in / whole (difference)",
            _f(streamed.get("wer"), 3),
            _f(whole.get("wer"), 3),
            "agent_wer_gap",
            quality["replies"],
        ),
        row(
            f"{n} conversations at once: first audio / a lone one's (worst)",
            _pp(many["first_audio_s"]),
            _pp(many["lone_first_audio_s"]),
            "agent_conversations_first_audio_ratio",
            n,
        ),
        row(
            f"{n} conversations at once: longest a player ran dry (s)",
            _f(many["largest_gap_s"]),
            _f(many["lone_largest_gap_s"]),
            "agent_conversations_gap_s",
            n,
        ),
    ]
    header = ["measure", "socket p50 / p95", "baseline p50 / p95", "value", "target", "", "n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    errors = first["errors"] + flush["errors"] + barge["errors"] + many["errors"]
    capacity = _f(many["capacity_audio_s_per_s"])
    return [
        f"**12. Voice agents** ({figure['what']})",
        "",
        *lines,
        "",
        f"Conversations at once: {n} ({many['wanted']} for 80 % of the worker's capacity, {capacity} audio s "
        f"per s, at least 2; the plan's cap applies){_share(n, many['capacity_audio_s_per_s'])}; {errors} "
        "turns with errors"
        + (f": {'; '.join((barge['error_messages'] + many['error_messages'])[:3])}" if errors else "")
        + ".",
    ]


def agent_target_lines(targets: dict[str, Any]) -> list[str]:
    """The voice-agent issue's targets in one line."""
    present = [name for name in TARGETS if name in targets]
    if not present:
        return []
    return [
        "Targets (voice agents): "
        + "; ".join(f"{name.removeprefix('agent_')} {_met(targets[name])}" for name in present)
    ]


def _share(conversations: int, capacity: float | None) -> str:
    """How much of the worker the conversations ask for, speaking in real time; above 80 % the server
    queues a newcomer rather than let the players run dry (admission), and first audio pays for it."""
    if not capacity:
        return ""
    share = conversations / capacity
    more = ": more than 80 %, a newcomer waits for room" if share > 0.8 else ""
    return f"; in real time they ask for {share:.0%} of it{more}"
