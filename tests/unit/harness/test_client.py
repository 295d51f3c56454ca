"""The harness's one HTTP client: every way a call fails is one EndpointError naming the URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.client import get_json, post_json
from harness.errors import EndpointError
from stacks.process import free_port


class Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  # the name http.server calls
        status, body = {"/ok": (200, b'{"data": [{"id": "tiny"}]}'),
                        "/garbage": (200, b"not json"),
                        "/broken": (500, b"engine died")}[self.path]
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_an_answer_is_read_as_json(server: str) -> None:
    assert get_json(f"{server}/ok")["data"][0]["id"] == "tiny"


def test_an_error_status_names_the_url_and_the_body(server: str) -> None:
    with pytest.raises(EndpointError, match=r"/broken answered 500: engine died"):
        post_json(f"{server}/broken", {"prompt": "x"})


def test_a_body_that_is_not_json_is_an_endpoint_error(server: str) -> None:
    with pytest.raises(EndpointError, match="/garbage answered something unexpected"):
        get_json(f"{server}/garbage")


def test_a_refused_connection_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/models"
    with pytest.raises(EndpointError, match=rf"{url}: ConnectError"):
        get_json(url, timeout_s=2)
