"""The harness side's one HTTP client (httpx): every call the harness makes to a stack's or an
endpoint's HTTP interface goes through here, and every way such a call can fail (refused,
timed out, an error status, a body that is not what was asked) becomes one `EndpointError`
that names the URL, in one place.

The load generator (`workloads/`, inside Locust) and the balancer keep their own clients on
their hot paths; the launcher's health probe is the serving side's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from harness.errors import EndpointError


@contextmanager
def answering(url: str) -> Iterator[None]:
    """Whatever a call to `url` raises on the way becomes one EndpointError naming it."""
    try:
        yield
    except httpx.HTTPStatusError as exc:
        body = exc.response.text[:300]
        raise EndpointError(f"{url} answered {exc.response.status_code}: {body}") from exc
    except httpx.HTTPError as exc:
        raise EndpointError(f"{url}: {type(exc).__name__}: {exc}") from exc
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise EndpointError(f"{url} answered something unexpected: {exc!r}") from exc


def get(url: str, headers: dict[str, str] | None = None, timeout_s: float = 10.0) -> \
        httpx.Response:
    """A GET that answered 2xx (EndpointError otherwise)."""
    with answering(url):
        response = httpx.get(url, headers=headers, timeout=timeout_s)
        response.raise_for_status()
        return response


def post_json(url: str, payload: dict[str, Any], headers: dict[str, str] | None = None,
              timeout_s: float = 60.0) -> httpx.Response:
    """A POST of a JSON body, read whole, that answered 2xx (EndpointError otherwise)."""
    with answering(url):
        response = httpx.post(url, content=json.dumps(payload).encode(), timeout=timeout_s,
                              headers={"content-type": "application/json", **(headers or {})})
        response.raise_for_status()
        return response


def get_json(url: str, headers: dict[str, str] | None = None, timeout_s: float = 10.0) -> Any:
    with answering(url):
        return get(url, headers, timeout_s).json()
