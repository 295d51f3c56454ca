"""What a client may send the balancer, and how it is refused otherwise.

A malformed request is a 400, a request line and headers over `Limits.max_header_bytes` a 431,
a body over `max_body_bytes` a 413 (refused from its declared length, before it is read), and a
client whose headers are not complete within `header_timeout_s` of its request's first byte (or
of connecting) a 408. Each is answered by the balancer itself, reaches no replica, and closes
the connection: what follows on it cannot be trusted to start a request.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """What a client may send. Defaults as the field sets them: nginx's 1 MiB bodies are too
    small for long prompts, so bodies get 8 MiB; headers as Envoy's 60 KiB, rounded up; a
    header timeout shorter than nginx's 60 s, since clients here are programs."""

    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 8 * 1024 * 1024
    header_timeout_s: float = 30.0


class Refused(Exception):
    """A request the balancer answers itself with a 4xx and then closes the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
