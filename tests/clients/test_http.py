"""How the clients read the server's answers: its message, and whose fault a failure is."""

from __future__ import annotations

import httpx
import pytest

from tts_api.clients.http import RequestRejected, ServerFailed, check_response, error_message


def response(
    status: int, body: object = None, text: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    if body is not None:
        return httpx.Response(status, json=body, headers=headers)
    return httpx.Response(status, text=text, headers=headers)


def test_the_message_is_the_servers_own() -> None:
    body = {"error": {"message": "input has no speakable text", "type": "invalid_request_error"}}
    assert error_message(response(400, body)) == "input has no speakable text"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (response(502, text="<html>Bad Gateway</html>"), "HTTP 502 Bad Gateway: <html>Bad Gateway</html>"),
        (response(500, {"detail": "boom"}), 'HTTP 500 Internal Server Error: {"detail":"boom"}'),
        (response(404), "HTTP 404 Not Found"),
    ],
    ids=["proxy-html", "other-json", "empty"],
)
def test_a_body_in_another_shape_gives_the_status_line(reply: httpx.Response, message: str) -> None:
    assert error_message(reply) == message


@pytest.mark.parametrize("status", [400, 401, 404, 413])
def test_4xx_is_the_requests_fault(status: int) -> None:
    with pytest.raises(RequestRejected) as raised:
        check_response(response(status, {"error": {"message": "no"}}))
    assert raised.value.status == status


@pytest.mark.parametrize("status", [429, 500, 503])
def test_5xx_and_overload_are_the_servers(status: int) -> None:
    reply = response(status, {"error": {"message": "busy"}}, headers={"Retry-After": "2"})
    with pytest.raises(ServerFailed, match=r"busy \(retry after 2 s\)"):
        check_response(reply)


def test_success_passes() -> None:
    check_response(response(200, {"ok": True}))
