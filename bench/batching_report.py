"""Figure 13 from its raw rows: does a batched pass of the model pay on this machine, and what the engine's
default does about it."""

from __future__ import annotations

from typing import Any

from tts_api.worker.runtime import BATCH_ON_GPU

__all__ = ["batching_figure", "batching_table"]

PAYS = 1.1  # a batch pays when k chunks take at most 1/1.1 of their one-by-one time


def batching_figure(rows: list[dict[str, Any]]) -> dict[str, Any]:
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
    return lines
