"""Figure 13 from its raw rows: does a batched pass of the model pay on this machine, and what the engine's
default does about it."""

from __future__ import annotations

from typing import Any

from tts_api.worker.runtime import BATCH_ON_GPU

__all__ = ["batching_figure", "batching_table", "batching_targets"]

PAYS = 1.1  # a batch pays when k chunks take at most 1/1.1 of their one-by-one time
OVRL_LEVEL = 0.05  # batched audio's mean DNSMOS OVRL within this of one-by-one's
WER_LEVEL = 0.02  # and its mean word error at most this above


def batching_figure(rows: list[dict[str, Any]], quality: dict[str, Any] | None = None) -> dict[str, Any]:
    batched = [row for row in rows if row["k"] > 1]
    best = max(batched, key=lambda row: row["gain_s"], default=None)
    pays = best is not None and best["gain_s"] >= PAYS
    return {
        "what": "k chunks of ~100 characters (real weights, this CPU, torch engine): one at a time, then in "
        "one front_batch + decode_batch pass; gain: one-by-one time over batched",
        "rows": rows,
        "pays": pays,
        "default_batch_here": 1,
        "default_batch_on_gpu": BATCH_ON_GPU,
        "verdict": f"batching pays here (best gain {best['gain_s']:.2f} at k={best['k']})"
        if pays and best is not None
        else "batching does not pay here: the Kokoro engine runs one chunk per step on a CPU",
        **({"quality": _quality(quality)} if quality else {}),
    }


def _quality(raw: dict[str, Any]) -> dict[str, Any]:
    """Mean scores of figure 11's sentences made one by one and in one batched pass."""

    def mean(name: str, key: str) -> float:
        return sum(score[key] for score in raw[name]) / len(raw[name])

    return {
        "sentences": len(raw["sentences"]),
        "group": raw["group"],
        "max_abs_diff": raw["max_abs_diff"],
        **{
            name: {key: mean(name, key) for key in ("ovrl", "p808", "wer")}
            for name in ("one_by_one", "batched")
        },
        "raw": raw,
    }


def batching_targets(figure: dict[str, Any] | None) -> dict[str, Any]:
    """The batching issue's: batched audio scores level with one-by-one audio on figure 11's sentences."""
    quality = (figure or {}).get("quality")
    if quality is None:
        return {}
    ovrl = quality["batched"]["ovrl"] - quality["one_by_one"]["ovrl"]
    wer = quality["batched"]["wer"] - quality["one_by_one"]["wer"]
    return {
        "batched_ovrl_gap": {"value": ovrl, "min": -OVRL_LEVEL, "met": ovrl >= -OVRL_LEVEL},
        "batched_wer_gap": {"value": wer, "max": WER_LEVEL, "met": wer <= WER_LEVEL},
    }


def batching_table(figure: dict[str, Any]) -> list[str]:
    lines = [
        f"**13. Batched synthesis** ({figure['what']})",
        "",
        "| k | audio s | one by one s | batched s | gain | front gain | decoder gain | CPU gain | max diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in figure["rows"]:
        lines.append(
            f"| {row['k']} | {row['audio_s']:.1f} | {row['one_by_one_s']:.2f} | {row['batched_s']:.2f} | "
            f"{row['gain_s']:.2f}× | {row['gain_front_s']:.2f}× | {row['gain_decoder_s']:.2f}× | "
            f"{row['gain_cpu_s']:.2f}× | {row['max_abs_diff']:.1e} |"
        )
    lines += [
        "",
        f"{figure['verdict']}; on a GPU the default is {figure['default_batch_on_gpu']} (`--batch`).",
    ]
    quality = figure.get("quality")
    if quality is not None:
        one, batched = quality["one_by_one"], quality["batched"]
        lines += [
            "",
            f"Figure 11's {quality['sentences']} sentences in batched passes of {quality['group']} against "
            f"one by one (same seeds): DNSMOS OVRL {batched['ovrl']:.2f} / {one['ovrl']:.2f}, "
            f"P.808 {batched['p808']:.2f} / {one['p808']:.2f}, WER {batched['wer']:.3f} / {one['wer']:.3f}; "
            f"largest sample difference {quality['max_abs_diff']:.1e}.",
        ]
    return lines
