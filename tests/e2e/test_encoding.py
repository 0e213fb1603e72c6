"""Each request's audio is encoded in the HTTP process that sends it: the worker hands over PCM whatever
the format, so that its thread only synthesizes (issue 36's item 3). Told by the CPU each process spends,
through a real server on a fast emulated engine (bench/formats.py)."""

from __future__ import annotations

from bench.formats import FLAGS, measure_format
from tts_api.processes import ServerProcess

from ..servers import shared_server

formats_server = shared_server("formats_server", *FLAGS)


def test_mp3_is_encoded_by_the_http_process_not_the_worker(formats_server: ServerProcess) -> None:
    result = measure_format(formats_server, "mp3", streams=2)
    cpu, processes = result["cpu_ms_per_audio_s"], result["processes"]
    assert processes["worker"] == 1 and processes["http"] >= 1, processes
    assert result["audio_s"] > 100  # two long texts: enough audio that start-up costs do not count
    # Encoding mp3 costs ~10-20 ms of CPU per audio second; the worker's part (its frames, the emulated
    # engine's tones, the scheduler) ~1 ms. Encoded in the worker, the split was the other way round.
    assert cpu["http"] > 3 * cpu["worker"], cpu
