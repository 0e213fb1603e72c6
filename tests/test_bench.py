"""The benchmark cannot rot: its quick mode runs end to end on the tiny model and writes every figure.

Only the shape of the results is checked, never a speed: the tiny model's timings mean nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.batching_report import batching_figure, batching_table, batching_targets
from bench.stats import histogram_quantile, summarize
from tests.background import Background

# ~4.5 min on a 2-core box beside the rest of the suite, which it starts with; more on a slower one.
RUN_TIMEOUT_S = 1200
# The first test waits for what is left of the run (a module fixture): more than the suite's default.
pytestmark = [pytest.mark.server, pytest.mark.timeout(RUN_TIMEOUT_S + 60)]
SIZES = ("short", "medium", "long")


class QuickRun:
    def __init__(self, out: Path, stdout: str) -> None:
        self.out = out
        self.stdout = stdout
        self.result: dict[str, Any] = json.loads((out / "results.json").read_text())
        self.figures: dict[str, Any] = self.result["figures"]


@pytest.fixture(scope="module")
def quick(quick_bench: Background | None) -> QuickRun:
    """The run the session started beside its other tests (tests/conftest.py), once it has ended."""
    assert quick_bench is not None
    done = quick_bench.wait(RUN_TIMEOUT_S)
    assert done.returncode == 0, f"bench.run failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return QuickRun(quick_bench.out, done.stdout)


def assert_summary(summary: dict[str, Any], *, n: int | None = None) -> None:
    """A p50/p95 summary of real samples."""
    assert summary["n"] == len(summary["samples"]) > 0
    if n is not None:
        assert summary["n"] == n
    assert all(isinstance(v, float) and math.isfinite(v) for v in summary["samples"])
    assert summary["p50"] is not None and summary["p95"] is not None
    assert min(summary["samples"]) <= summary["p50"] <= summary["p95"] <= max(summary["samples"])


def test_time_to_first_audio_has_every_size_and_format_with_the_bare_baseline(quick: QuickRun) -> None:
    sizes = quick.figures["time_to_first_audio"]["sizes"]
    assert set(sizes) == set(SIZES)
    for size in SIZES:
        assert_summary(sizes[size]["baseline"])
        for response_format in ("pcm", "mp3"):
            assert_summary(sizes[size]["server"][response_format])
            assert sizes[size]["ratio"][response_format] > 0


def test_real_time_factor_has_every_size_with_the_bare_baseline(quick: QuickRun) -> None:
    sizes = quick.figures["real_time_factor"]["sizes"]
    assert set(sizes) == set(SIZES)
    for size in SIZES:
        assert_summary(sizes[size]["baseline"])
        assert_summary(sizes[size]["server"]["pcm"])
        assert sizes[size]["ratio"]["pcm"] > 0
        assert sizes[size]["total_ratio"]["pcm"] > 0
    for size in ("short", "medium"):  # the long mp3 stream is abandoned after its first audio
        assert_summary(sizes[size]["server"]["mp3"])


def test_concurrency_sweep_has_every_level_without_errors(quick: QuickRun) -> None:
    figure = quick.figures["concurrency"]
    assert_summary(figure["baseline"]["audio_s_per_wall_s"])
    assert [level["streams"] for level in figure["levels"]] == list(quick.result["plan"]["concurrency"])
    for level in figure["levels"]:
        assert level["errors"] == 0, level["error_messages"]
        assert_summary(level["first_audio"], n=level["streams"])
        assert level["audio_s_per_wall_s"] > 0
        assert level["ratio"] > 0
        assert figure["ratio"][str(level["streams"])] == level["ratio"]


def test_server_overhead_has_the_delivery_histogram_and_a_client_side_measure(quick: QuickRun) -> None:
    figure = quick.figures["server_overhead"]
    assert figure["p50"] is not None and figure["p95"] is not None
    assert figure["delivery_idle"]["count"] > 0 and figure["samples"]
    assert figure["delivery_under_concurrency"]["count"] > 0
    assert_summary(figure["client_side"])
    assert_summary(figure["baseline"])
    assert figure["ratio"] is not None
    assert figure["added_to_first_audio_short"]["plain_litserve_s"] is not None


def test_memory_covers_the_mixed_requests_with_before_after_and_growth(quick: QuickRun) -> None:
    figure = quick.figures["memory"]
    assert figure["requests"] == quick.result["plan"]["memory_requests"]
    assert set(figure["formats"]) == {"mp3", "opus", "aac", "flac", "wav", "pcm"}
    assert figure["abandoned"].get("after_send") and figure["abandoned"].get("after_first_audio")
    assert figure["errors"] == 0
    for key in ("rss_mib", "uss_mib"):
        assert figure["baseline"][key] > 0 and figure["after"][key] > 0
        assert key in figure["growth_mib"]
    assert figure["ratio"] > 0
    assert_summary(figure["rss_during"])
    assert figure["idle_gauges_after"] == {"tts_cancel_board_entries": 0, "tts_open_encoders": 0}
    small = figure["small_requests"]
    assert small["errors"] == 0 and len(small["cases"]) == 3
    assert all(isinstance(growth, float) for growth in small["cases"].values())
    assert "small_request_growth_mib" in quick.result["targets"]
    assert "capacity_vs_long_text" in quick.result["targets"]


def test_cancellation_compares_tts_api_with_plain_litserve(quick: QuickRun) -> None:
    figure = quick.figures["cancellation"]
    assert figure["window_s"] >= 5
    for server in ("tts_api", "plain_litserve"):
        data = figure["servers"][server]
        assert_summary(data["cpu_s_after_abandon"])
        assert_summary(data["first_audio_idle"])
        assert_summary(data["first_audio_after_abandon"])
        assert data["follow_up_ratio"] > 0
    assert figure["baseline"]["server"] == "plain_litserve"
    assert figure["baseline"]["cpu_s_after_abandon"] is not None
    assert set(figure["ratio"]) == {"cpu_s_after_abandon", "follow_up_ratio"}


def test_the_machine_and_the_run_are_described(quick: QuickRun) -> None:
    result = quick.result
    machine = result["machine"]
    assert machine["cpu_model"] and machine["logical_cores"] >= 1
    assert machine["torch_threads"] >= 1 and machine["server_torch_threads"] >= 1
    assert all(machine["versions"][name] for name in ("torch", "kokoro", "litserve", "tts-api"))
    assert result["plan"]["name"] == "quick" and result["duration_s"] > 0
    assert set(result["load"]["phases"]) >= {"idle requests", "concurrency", "memory"}
    assert 0 <= result["load"]["steal_share"] < 1
    assert set(result["targets"]) >= {
        "long_first_audio_ratio",
        "long_total_ratio",
        "real_burst_good_streams",
        "real_good_share_never_below_fifo",
        "emulated_8_good_share_at_80",
        "emulated_8_first_chunk_wait_within_bound",
    }


def test_plots_and_the_table_are_written(quick: QuickRun) -> None:
    for name in ("first_audio.png", "concurrency.png", "memory.png", "goodput.png"):
        path = quick.out / name
        assert path.stat().st_size > 0 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (quick.out / "results.md").read_text()
    assert table in quick.stdout
    for heading in ("1. Time to first audio", "2. Real-time factor", "3. Concurrency", "4. Server overhead"):
        assert heading in table
    assert "5. Memory" in table and "6. Cancellation" in table
    assert "7. Goodput, real engine" in table and "7. Goodput, emulated:8" in table
    assert "8. The serving path at scale" in table and "9. Cancellation under load" in table
    assert "10. Engines" in table and "11. Speech quality" in table


def test_engines_compare_the_default_engine_and_torch_with_the_bare_pipeline(quick: QuickRun) -> None:
    figure = quick.figures["engines"]
    assert figure["default"] in ("onnx", "torch")
    assert "torch" in figure["engines"]
    assert f"{figure['default']}, untrimmed" in figure["engines"]
    for data in figure["engines"].values():
        assert data["short_first_audio_ratio"] > 0 and data["long_rtf_ratio"] > 0
        assert data["capacity"] > 0  # the worker's own start-up measure
    assert figure["capacity_gain_from_trimming"] > 0
    two = figure["two_workers"]
    assert two["streams"] == 2 and two["errors"] == 0 and two["ratio"] > 0 and two["capacity"] > 0
    assert {"short_first_audio_ratio", "capacity_gain_from_trimming", "ovrl_worst_gap"} <= set(
        quick.result["targets"]
    )


def test_quality_scores_every_variant_against_the_bare_pipeline(quick: QuickRun) -> None:
    figure = quick.figures["quality"]
    default = quick.figures["engines"]["default"]
    assert {default, f"{default}, untrimmed"} <= set(figure["variants"])
    for scores in (figure["bare"], *figure["variants"].values()):
        assert 1.0 <= scores["ovrl"] <= 5.0 and 1.0 <= scores["p808"] <= 5.0
        assert scores["wer"] >= 0.0
    raw = quick.result["raw"]["quality"]
    assert len(raw["bare"]) == len(quick.result["plan"]["quality_sentences"]) == 2


def test_goodput_compares_both_policies_on_the_real_and_the_emulated_engine(quick: QuickRun) -> None:
    scenarios = quick.figures["goodput"]["scenarios"]
    assert set(scenarios) == {"real engine", "emulated:8"}
    # The lone pace the fifo burst measured, below the 8 audio s per s of long chunks: a text's first chunks
    # are short and each pays the fixed cost.
    assert 0 < scenarios["emulated:8"]["capacity_audio_s_per_s"] < 8.0
    for name, scenario in scenarios.items():
        assert scenario["capacity_audio_s_per_s"] > 0
        assert set(scenario["policies"]) == {"fifo", "edf"}
        for data in scenario["policies"].values():
            burst = data["burst"]
            assert burst["streams"] == (quick.result["plan"]["real_burst"] if name == "real engine" else 16)
            assert burst["complete"] == burst["streams"] and burst["errors"] == 0
            assert 0 <= burst["good"] <= burst["streams"] and burst["server_cpu_s"] > 0
            assert set(data["open_loop"]) == {"80%"}
            for run in data["open_loop"].values():
                assert run["arrivals_per_s"] > 0 and run["errors"] == 0 and run["server_cpu_s"] > 0
                if run["complete"]:  # the plain deadline-first worker on the same arrivals
                    assert 0 <= run["yardstick_good_share"] <= 1
            wait = data["first_chunk_wait"]
            assert wait["bound_s"] > 0 and (wait["worst_s"] is None or wait["worst_s"] >= 0)
    assert (
        scenarios["real engine"]["policies"]["edf"]["cancellation_under_load"]["synthesized_audio_s"]
        is not None
    )
    assert "emulated_8_good_share_near_the_yardstick" in quick.result["targets"]


def test_the_scale_run_names_where_the_serving_path_spends_its_cpu(quick: QuickRun) -> None:
    run = quick.figures["scale"]["runs"]["16"]
    assert run["complete"] == run["streams"] == 16 and run["errors"] == 0
    assert run["chunks"] > 0 and run["board_calls_per_chunk"] > 0
    assert run["delivery_s"]["count"] > 0 and run["delivery_s"]["p95"] is not None
    assert set(run["cpu_s"]) == {"main", "worker", "http", "managers"}
    assert run["cpu_s"]["worker"] > 0 and run["cpu_s"]["http"] > 0
    assert run["scheduler_ms"]["admission"] > 0 and run["scheduler_ms"]["pick"] > 0


def test_the_scale_run_measures_a_burst_and_long_streams_on_a_batching_worker(quick: QuickRun) -> None:
    batched = quick.figures["scale"]["batched"]
    burst, long = batched["burst"], batched["long"]
    assert burst["streams"] == burst["complete"] == 8 and burst["errors"] == 0
    assert burst["first_audio_s"]["n"] == 8 and 0 <= burst["within_bound"] <= 8
    assert burst["chunks_per_step"] is not None and burst["chunks_per_step"] >= 1
    assert long["streams"] == long["complete"] == 16 and long["errors"] == 0
    assert long["delivery_s"]["count"] > 0 and long["delivery_s"]["p95"] is not None
    targets = quick.result["targets"]
    assert {"scale_batched_burst_8_within_1s", "scale_batched_16_gap_free"} <= set(targets)
    assert "burst of 8, batched" in (quick.out / "results.md").read_text()


def test_voice_agents_measure_every_target_over_the_socket(quick: QuickRun) -> None:
    from bench.agent_report import TARGETS

    figure, plan = quick.figures["agents"], quick.result["plan"]
    first = figure["first_audio"]
    assert first["replies"] == len(plan["agent_replies"]) == 2 and first["errors"] == 0
    for key in ("streamed", "waited", "http_first_sentence", "ratios"):
        assert_summary(first[key], n=2)
    flush = figure["flush"]
    assert flush["errors"] == 0 and flush["ratio"] > 0
    for key in ("http", "opened", "spoken"):
        assert_summary(flush[key], n=plan["agent_flush_reps"])
    barge = figure["barge_in"]
    assert barge["trials"] == plan["agent_barge_in_trials"] and barge["errors"] == 0, barge["error_messages"]
    assert barge["window_s"] >= 5 and barge["audio_messages_after_final"] is not None  # cut, and answered
    for key in ("cut_at_s", "cpu_s", "fresh_first_audio_s", "next_first_audio_s", "final_after_close_s"):
        assert_summary(barge[key], n=barge["trials"])
    quality = figure["quality"]
    for scores in (quality["streamed"], quality["whole"]):
        assert 1.0 <= scores["ovrl"] <= 5.0 and scores["wer"] >= 0.0
    assert quality["ovrl_gap"] is not None and quality["wer_gap"] is not None
    many = figure["conversations"]
    assert many["capacity_audio_s_per_s"] > 0 and many["conversations"] == 2 and many["errors"] == 0
    assert_summary(many["first_audio_s"], n=2)
    assert_summary(many["lone_first_audio_s"], n=1)
    assert many["worst_ratio"] > 0 and many["largest_gap_s"] >= 0 and many["audio_s"] > 0
    targets = quick.result["targets"]
    assert set(TARGETS) <= set(targets)
    assert all(targets[name]["value"] is not None for name in TARGETS)
    assert "agents" in quick.result["load"]["phases"]
    table = (quick.out / "results.md").read_text()
    assert "12. Voice agents" in table and "Targets (voice agents):" in table


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    histogram = {"buckets": [(0.001, 2.0), (0.01, 6.0), (math.inf, 8.0)], "sum": 0.05, "count": 8.0}
    assert histogram_quantile(histogram, 0.25) == pytest.approx(0.001)
    assert histogram_quantile(histogram, 0.5) == pytest.approx(0.001 + 0.009 * 2 / 4)
    assert histogram_quantile(histogram, 0.95) == 0.01  # in +Inf: reported at the last finite bound
    assert histogram_quantile({"buckets": [(math.inf, 0.0)], "sum": 0.0, "count": 0.0}, 0.5) is None


def test_summaries_skip_missing_samples() -> None:
    assert summarize([None, 2.0, 1.0])["samples"] == [2.0, 1.0]
    assert summarize([None])["p50"] is None


def test_the_hypervisors_steal_is_not_counted_as_other_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import namedtuple

    from bench import machine

    Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")
    samples = iter([Times(100, 0, 50, 1000, 5, 0, 0, 20, 0, 0), Times(108, 0, 52, 1010, 5, 0, 0, 24, 0, 0)])
    monkeypatch.setattr(machine.psutil, "cpu_times", lambda: next(samples))
    meter = machine.LoadMeter(lambda: [])
    meter.phase("busy")
    meter.end()
    phase = meter.phases["busy"]
    assert phase["steal_cpu_s"] == 4.0
    assert phase["other_cpu_s"] <= 10.0  # 8 user + 2 system, less what this process used meanwhile
    assert meter.summary()["steal_share"] > 0


def test_figure_13_says_whether_batching_pays_from_its_own_rows() -> None:
    def row(k: int, gain: float) -> dict[str, float]:
        keys = ("s", "front_s", "decoder_s", "cpu_s")
        return {
            "k": k,
            "audio_s": 6.0 * k,
            "one_by_one_s": 7.0 * k,
            "batched_s": 7.0 * k / gain,
            "max_abs_diff": 0.01,
            **{f"gain_{key}": gain for key in keys},
        }

    loses = batching_figure([row(1, 0.95), row(2, 0.9), row(4, 0.76)])
    assert not loses["pays"] and "does not pay" in loses["verdict"]
    pays = batching_figure([row(1, 1.0), row(4, 2.5)])
    assert pays["pays"] and "k=4" in pays["verdict"]
    table = batching_table(pays)
    assert table[0].startswith("**13. Batched synthesis**")
    assert table[5].startswith("| 4 | 24.0 | 28.00 | 11.20 |")


def test_figure_13_judges_batched_audio_by_ear_against_one_by_one() -> None:
    def clips(ovrl: list[float], wer: list[float]) -> list[dict[str, float]]:
        return [{"ovrl": o, "p808": 3.5, "wer": w} for o, w in zip(ovrl, wer, strict=True)]

    quality = {
        "sentences": ["One.", "Two."],
        "group": 2,
        "max_abs_diff": 1e-6,
        "one_by_one": clips([3.2, 3.4], [0.0, 0.1]),
        "batched": clips([3.2, 3.3], [0.0, 0.1]),
    }
    assert batching_targets(batching_figure([], None)) == {}
    level = batching_targets(batching_figure([], quality))
    assert level["batched_ovrl_gap"]["value"] == pytest.approx(-0.05) and level["batched_wer_gap"]["met"]
    worse = batching_targets(batching_figure([], {**quality, "batched": clips([3.1, 3.3], [0.0, 0.2])}))
    assert not worse["batched_ovrl_gap"]["met"] and not worse["batched_wer_gap"]["met"]
    assert "2 sentences in batched passes of 2" in " ".join(batching_table(batching_figure([], quality)))
