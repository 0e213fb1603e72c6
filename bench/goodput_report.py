"""Figures 7-9 from their raw runs: goodput summaries, the scheduling issue's targets, the tables."""

from __future__ import annotations

from typing import Any

from .listeners import GOOD_FIRST_AUDIO_FACTOR, GOOD_UNDERRUN_S
from .stats import ratio
from .yardstick import Worker, good_share, simulate

__all__ = [
    "goodput_figure",
    "goodput_tables",
    "goodput_targets",
    "scale_figure",
    "scale_table",
    "scale_targets",
]

BURST_GOOD_SHARE_OF_CAPACITY = 0.9
GOOD_SHARE_AT_50 = 0.95  # real engine
GOOD_SHARE_AT_80 = 0.95  # emulated engines
FIRST_AUDIO_VS_FIFO = 1.1  # edf's median first audio over fifo's, at 80 % and 120 %
CPU_VS_FIFO = 1.05
SCALE_STREAMS = "128"
SCALE_DELIVERY_P95_S = 0.020
YARDSTICK_SHARE = (
    0.9  # edf's good share over plain deadline-first's on the same arrivals (bench/yardstick.py)
)
FIRST_CHUNK_AUDIO_S = 2.0  # about what the first chunk (~30 characters) says
EMULATED_MARGINS_S = 0.6  # the emulated engine's pieces carry Kokoro's edge silence, and are costed for it


def _strip(run: dict[str, Any], worker: Worker | None = None) -> dict[str, Any]:
    data = {k: v for k, v in run.items() if k != "listeners"}
    if run.get("streams"):
        data["good_share"] = run["good"] / run["streams"]
        if worker is not None:
            data["yardstick_good_share"] = _yardstick(run, worker)
    return data


def _yardstick(run: dict[str, Any], worker: Worker) -> float | None:
    """The plain deadline-first worker's good share on this run's arrivals (when each listener was sent, and
    how much audio it asked for: what it got, or the mean of the others for one refused)."""
    listeners = run["listeners"]
    heard = [x["audio_s"] for x in listeners if x["complete"]]
    if not heard:
        return None
    mean = sum(heard) / len(heard)
    start = min(x["sent_at"] for x in listeners)
    arrivals = [(x["sent_at"] - start, x["audio_s"] if x["complete"] else mean) for x in listeners]
    return good_share(simulate(worker, arrivals), run["good_first_audio_s"])


def _worker(name: str, capacity: float | None, lone_first_audio_s: float | None) -> Worker | None:
    """The yardstick's worker for a scenario: the emulated engine's known costs (N audio s per s in long
    chunks, whatever the measured lone pace); for the real engine its measured capacity, and a fixed cost
    per chunk from a lone stream's first audio."""
    if name.startswith("emulated:"):
        listeners = float(name.split(":")[1])
        return Worker(listeners, 0.02 + EMULATED_MARGINS_S / listeners, FIRST_CHUNK_AUDIO_S)
    if not capacity:
        return None
    fixed = max(0.0, (lone_first_audio_s or 0.0) - FIRST_CHUNK_AUDIO_S / capacity)
    return Worker(capacity, fixed, FIRST_CHUNK_AUDIO_S)


def goodput_figure(raw: dict[str, Any]) -> dict[str, Any]:
    """Figure 7 per scenario and policy: lone, burst, open-loop loads, worst admitted wait."""
    scenarios = {}
    for name, data in raw.items():
        policies = {}
        for policy, runs in data["policies"].items():
            worker = _worker(name, data["capacity_audio_s_per_s"], runs["lone"]["first_audio_s"])
            policies[policy] = {
                "lone_first_audio_s": runs["lone"]["first_audio_s"],
                "burst": _strip(runs["burst"]),
                "open_loop": {load: _strip(run, worker) for load, run in runs["open_loop"].items()},
                "first_chunk_wait": runs["first_chunk_wait"],
                **(
                    {"cancellation_under_load": runs["cancellation_under_load"]}
                    if "cancellation_under_load" in runs
                    else {}
                ),
            }
        scenarios[name] = {"capacity_audio_s_per_s": data["capacity_audio_s_per_s"], "policies": policies}
    return {
        "what": "pcm listeners played by a model player from their first byte; good = complete, first audio "
        f"within {GOOD_FIRST_AUDIO_FACTOR:g}x a lone stream's (at least 1 s on the emulated engine), never "
        f"dry over {GOOD_UNDERRUN_S * 1000:.0f} ms; same seeded arrivals for both policies",
        "scenarios": scenarios,
    }


def _target(value: Any, met: bool, **bounds: Any) -> dict[str, Any]:
    return {"value": value, **bounds, "met": bool(met)}


def goodput_targets(figure: dict[str, Any]) -> dict[str, Any]:
    """The scheduling issue's targets, edf against fifo in the same run."""
    targets: dict[str, Any] = {}
    for name, scenario in figure["scenarios"].items():
        edf, fifo = scenario["policies"].get("edf"), scenario["policies"].get("fifo")
        if not edf or not fifo:
            continue
        key = "real" if name == "real engine" else name.replace(":", "_")
        loads = edf["open_loop"]
        never_worse = all(
            (run.get("good_share") or 0) >= (fifo["open_loop"][load].get("good_share") or 0)
            for load, run in loads.items()
        )
        targets[f"{key}_good_share_never_below_fifo"] = _target(
            {
                load: [run.get("good_share"), fifo["open_loop"][load].get("good_share")]
                for load, run in loads.items()
            },
            never_worse,
        )
        near = {load: [run.get("good_share"), run.get("yardstick_good_share")] for load, run in loads.items()}
        targets[f"{key}_good_share_near_the_yardstick"] = _target(
            near,
            all(y is None or (g or 0) >= YARDSTICK_SHARE * y for g, y in near.values()),
            min_share=YARDSTICK_SHARE,
        )
        wait = edf["first_chunk_wait"]
        targets[f"{key}_first_chunk_wait_within_bound"] = _target(
            wait["worst_s"],
            wait["worst_s"] is None or wait["bound_s"] is None or wait["worst_s"] <= wait["bound_s"],
            max=wait["bound_s"],
        )
        if key == "real":
            targets.update(_real_targets(scenario, edf, fifo))
        else:
            targets.update(_emulated_targets(key, scenario, edf))
    return targets


def _real_targets(scenario: dict[str, Any], edf: dict[str, Any], fifo: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    capacity = scenario["capacity_audio_s_per_s"]
    burst = edf["burst"]
    targets["real_burst_good_streams"] = _target(
        burst["good"],
        burst["good"] >= BURST_GOOD_SHARE_OF_CAPACITY * capacity,
        min=BURST_GOOD_SHARE_OF_CAPACITY * capacity,
    )
    at_50 = edf["open_loop"].get("50%", {}).get("good_share")
    targets["real_good_share_at_50"] = _target(
        at_50, at_50 is not None and at_50 >= GOOD_SHARE_AT_50, min=GOOD_SHARE_AT_50
    )
    for load in ("80%", "120%"):
        if load in edf["open_loop"]:
            value = ratio(
                edf["open_loop"][load]["first_audio_s"]["p50"],
                fifo["open_loop"][load]["first_audio_s"]["p50"],
            )
            targets[f"real_first_audio_p50_vs_fifo_at_{load[:-1]}"] = _target(
                value, value is not None and value <= FIRST_AUDIO_VS_FIFO, max=FIRST_AUDIO_VS_FIFO
            )
    cpu = ratio(*(sum(run["server_cpu_s"] for run in p["open_loop"].values()) for p in (edf, fifo)))
    targets["real_cpu_vs_fifo"] = _target(cpu, cpu is not None and cpu <= CPU_VS_FIFO, max=CPU_VS_FIFO)
    return targets


def _emulated_targets(key: str, scenario: dict[str, Any], edf: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    capacity = scenario["capacity_audio_s_per_s"]
    burst = edf["burst"]
    targets[f"{key}_burst_first_capacity_good"] = _target(
        burst["good"], burst["good"] >= capacity, min=capacity
    )
    at_80 = edf["open_loop"].get("80%", {}).get("good_share")
    targets[f"{key}_good_share_at_80"] = _target(
        at_80, at_80 is not None and at_80 >= GOOD_SHARE_AT_80, min=GOOD_SHARE_AT_80
    )
    over = edf["open_loop"].get("120%")
    if over is not None:
        gap = over["largest_underrun_s"]
        targets[f"{key}_gap_free_at_120"] = _target(
            gap, gap is not None and gap <= GOOD_UNDERRUN_S, max=GOOD_UNDERRUN_S
        )
    return targets


def scale_figure(raw: dict[str, Any], batched: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "what": "concurrent pcm streams on --engine emulated:200 (one worker, one HTTP process), started "
        "over 5 s; delivery = worker yields a chunk to the front sends it (server histogram, interpolated); "
        "saturates first = the role whose one core carries the fewest real-time streams (its audio s per "
        "CPU s)",
        "runs": raw,
        **({"batched": batched} if batched else {}),
    }


def scale_targets(figure: dict[str, Any]) -> dict[str, Any]:
    run = figure["runs"].get(SCALE_STREAMS)
    if run is None:
        return _batched_targets(figure.get("batched"))
    p95 = run["delivery_s"]["p95"]
    return {
        "scale_128_delivery_p95": _target(
            p95, p95 is not None and p95 <= SCALE_DELIVERY_P95_S, max=SCALE_DELIVERY_P95_S
        ),
        "scale_128_gap_free": _target(run["gap_free"], run["gap_free"] == run["streams"], min=run["streams"]),
        **_batched_targets(figure.get("batched")),
    }


def _batched_targets(batched: dict[str, Any] | None) -> dict[str, Any]:
    """The batching issue's: a burst all heard within its bound, long streams gap-free, prompt delivery."""
    if batched is None:
        return {}
    burst, long = batched["burst"], batched["long"]
    n, streams, p95 = burst["streams"], long["streams"], long["delivery_s"]["p95"]
    return {
        f"scale_batched_burst_{n}_within_1s": _target(
            burst["within_bound"], burst["within_bound"] == n, min=n
        ),
        f"scale_batched_{streams}_gap_free": _target(
            long["gap_free"], long["gap_free"] == streams, min=streams
        ),
        f"scale_batched_{streams}_delivery_p95": _target(
            p95, p95 is not None and p95 <= SCALE_DELIVERY_P95_S, max=SCALE_DELIVERY_P95_S
        ),
    }


def _n(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def goodput_tables(figure: dict[str, Any]) -> list[list[str]]:
    """Figure 7 (one table per worker) and figure 9, cancellation under load on the real engine."""
    tables = []
    cancel_rows = []
    for name, scenario in figure["scenarios"].items():
        rows = []
        for policy, data in scenario["policies"].items():
            runs = {"burst": data["burst"], **data["open_loop"]}
            for label, run in runs.items():
                first = run["first_audio_s"]
                rows.append(
                    [
                        policy,
                        label if label == "burst" else f"{label} ({run['arrivals_per_s']:.2f}/s)",
                        f"{run['good']} of {run['streams']} ({_pct(run.get('good_share'))})",
                        _pct(run.get("yardstick_good_share")) if "yardstick_good_share" in run else "",
                        f"{_n(first['p50'])} / {_n(first['p95'])} / {_n(first['max'])} s",
                        _n(run["largest_underrun_s"], 2, " s"),
                        str(run["rejected_503"]),
                        _n(run.get("server_cpu_s"), 1, " s"),
                    ]
                )
            wait = data["first_chunk_wait"]
            rows.append(
                [
                    policy,
                    "admitted → first audio, worst",
                    f"{_n(wait['worst_s'])} s (bound {_n(wait['bound_s'])} s)",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
            if "cancellation_under_load" in data:
                c = data["cancellation_under_load"]
                cancel_rows.append(
                    [
                        policy,
                        _n(c["heard_audio_s"], 2, " s"),
                        _n(c["synthesized_audio_s"], 2, " s"),
                        _n(c["after_leaving_audio_s"], 2, " s"),
                    ]
                )
        lone = {p: d["lone_first_audio_s"] for p, d in scenario["policies"].items()}
        tables.append(
            [
                f"**7. Goodput, {name}** (capacity {_n(scenario['capacity_audio_s_per_s'])} audio s per s; "
                f"lone first audio {', '.join(f'{p} {_n(v)} s' for p, v in lone.items())}; {figure['what']})",
                "",
                *_table(
                    [
                        "policy",
                        "run",
                        "good",
                        "plain deadline-first, same arrivals",
                        "first audio p50 / p95 / max",
                        "largest underrun",
                        "503s",
                        "server CPU",
                    ],
                    rows,
                ),
            ]
        )
    if cancel_rows:
        tables.append(
            [
                "**9. Cancellation under load** (one of three listeners leaves 2 s after its first audio)",
                "",
                *_table(["policy", "heard", "synthesized", "synthesized after it left"], cancel_rows),
            ]
        )
    return tables


def scale_table(figure: dict[str, Any]) -> list[str]:
    rows = [_scale_row(n, run) for n, run in figure["runs"].items()]
    batched = figure.get("batched")
    if batched is not None:
        burst, long = batched["burst"], batched["long"]
        first = burst["first_audio_s"]
        rows.append(
            [
                f"burst of {burst['streams']}, batched",
                f"{burst['complete']} of {burst['streams']}",
                f"{burst['gap_free']} of {burst['streams']}",
                f"{_n(first['p50'])} / {_n(first['p95'])} s (max {_n(first['max'])} s; "
                f"{burst['within_bound']} within {burst['bound_s']:g} s)",
                "–",
                "–",
                f"{_n(burst['chunks_per_step'], 1)} chunks per step",
                "–",
                "–",
                "–",
            ]
        )
        rows.append(_scale_row(f"{long['streams']} long, batched", long))
    return [
        f"**8. The serving path at scale** ({figure['what']}; then a batching worker, "
        "--engine emulated:8:0.05:64: a burst sent at once, and long streams started over 5 s)",
        "",
        *_table(
            [
                "streams",
                "complete",
                "gap-free",
                "first audio p50 / p95",
                "delivery p50 / p95",
                "HTTP CPU per stream",
                "board calls per chunk",
                "CPU, share of a core",
                "saturates first",
                "admission / pick",
            ],
            rows,
        ),
    ]


def _scale_row(label: str, run: dict[str, Any]) -> list[str]:
    share, carries = run["cpu_share_of_a_core"], run["streams_per_core"]
    first = min(carries, key=carries.get) if carries else None
    costs = run.get("scheduler_ms")
    return [
        label,
        f"{run['complete']} of {run['streams']}",
        f"{run['gap_free']} of {run['streams']}",
        f"{_n(run['first_audio_s']['p50'])} / {_n(run['first_audio_s']['p95'])} s",
        f"{_n(run['delivery_s']['p50'], 4)} / {_n(run['delivery_s']['p95'], 4)} s",
        _n(run["http_cpu_s_per_stream"], 3, " s"),
        _n(run["board_calls_per_chunk"], 1),
        ", ".join(f"{role} {v:.0%}" for role, v in share.items()),
        "–" if first is None else f"{first}, ~{carries[first]:.0f} streams per core",
        "–" if costs is None else f"{costs['admission']:.2f} / {costs['pick']:.2f} ms",
    ]
