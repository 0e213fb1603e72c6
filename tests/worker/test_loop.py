"""The worker loop's bookkeeping without a model: every request it takes ends with a FINISH and a closed
board entry, whatever goes wrong (LitServe's transport and the board are real; the engine is not needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litserve.utils import LitAPIStatus

from tts_api.ipc.counters import Counters
from tts_api.ipc.frames import TICKET_KEY, Ticket
from tts_api.ipc.manager import Shared
from tts_api.ipc.streams import StreamBoard
from tts_api.schemas import RequestContext
from tts_api.voices import VoiceCatalogue
from tts_api.worker.api import SpeechAPI
from tts_api.worker.loop import SpeechLoop
from tts_api.worker.scheduler import CostModel, Scheduler


class _BrokenCatalogue(VoiceCatalogue):
    def resolve(self, expression: str) -> Any:
        raise RuntimeError("the voice table is corrupt")  # not a TTSError: a bug, not bad input


@dataclass
class _Transport:
    sent: list[tuple[str, Any, Any]] = field(default_factory=list)

    def send(self, item: Any, consumer_id: int) -> None:
        uid, (data, status, _kind, _worker) = item
        self.sent.append((uid, data, status))


@dataclass
class _Api:
    """What SpeechLoop needs of SpeechAPI, minus the model."""

    shared: Shared
    context: RequestContext
    scheduler: Scheduler = field(default_factory=lambda: Scheduler(CostModel(0.01)))
    opened: list[str] = field(default_factory=list)

    log_cancel = SpeechAPI.log_cancel

    def open_stream(self, *args: Any) -> Any:
        raise AssertionError("nothing here should reach synthesis")


def loop_with(catalogue: VoiceCatalogue) -> tuple[SpeechLoop, _Api, _Transport]:
    shared = Shared(board=StreamBoard(), counters=Counters())
    api = _Api(shared, RequestContext(catalogue, max_input_chars=1000, languages=frozenset("a")))
    loop, transport = SpeechLoop(), _Transport()
    loop.api, loop.transport, loop.worker = api, transport, 0  # type: ignore[assignment]
    loop.streams, loop.waiting, loop._created = {}, None, 1.0
    return loop, api, transport


def take(loop: SpeechLoop, api: _Api, body: dict[str, Any]) -> Ticket:
    ticket = Ticket.issue()
    assert api.shared.board.open(ticket.key, 10) == "admitted"
    loop._receive("uid-1", 0, {**body, TICKET_KEY: ticket.to_dict()})
    return ticket


def test_an_unexpected_error_while_decoding_still_ends_the_request_and_frees_its_slot() -> None:
    loop, api, transport = loop_with(_BrokenCatalogue(["af_heart"]))
    ticket = take(loop, api, {"input": "hello"})
    kinds = [ticket.parse(data).kind for _, data, status in transport.sent if status == LitAPIStatus.OK]
    assert kinds == ["start", "error"]
    assert transport.sent[-1][2] == LitAPIStatus.FINISH_STREAMING
    assert api.shared.board.size() == 0, "the admission slot must not leak"
    assert loop.waiting is None


def test_a_request_whose_entry_is_gone_never_runs() -> None:
    loop, api, transport = loop_with(VoiceCatalogue(["af_heart"]))
    ticket = take(loop, api, {"input": "hello"})
    assert loop.waiting is not None
    api.shared.board.close(ticket.key)  # the front gave up on it (its worker was presumed lost)
    loop._poll()
    assert loop.waiting is None
    assert transport.sent[-1][2] == LitAPIStatus.FINISH_STREAMING


def test_a_request_cancelled_while_waiting_never_runs_and_is_counted() -> None:
    loop, api, _ = loop_with(VoiceCatalogue(["af_heart"]))
    ticket = take(loop, api, {"input": "hello"})
    api.shared.board.cancel(ticket.key)
    loop._poll()
    loop._admit()
    assert loop.waiting is None and api.shared.board.size() == 0
    values = api.shared.counters.snapshot().values
    assert values[("tts_requests_cancelled_total", (("stage", "queued"),))] == 1


def test_a_waiting_request_cancelled_by_shutdown_gets_an_error_the_client_can_see() -> None:
    loop, api, transport = loop_with(VoiceCatalogue(["af_heart"]))
    ticket = take(loop, api, {"input": "hello"})
    api.shared.board.cancel_all("shutdown")
    loop._poll()
    frames = [ticket.parse(data) for _, data, status in transport.sent if status == LitAPIStatus.OK]
    assert frames[-1].kind == "error" and "shutting down" in frames[-1].error().message
    assert api.shared.board.size() == 0
