"""Why the balancer could not get an answer from a replica, and the status each one maps to.

    UpstreamError           (502)
    ├── UpstreamTimeout     504: no complete answer within the upstream timeout
    ├── UpstreamUnavailable 502: the connection was refused, reset or closed mid-answer
    ├── NoHealthyReplica    503: nothing to send the request to
    └── Overloaded          503 with Retry-After: admission control turned it away
"""


class UpstreamError(Exception):
    status = 502
    retry_after_s: int | None = None  # sent as Retry-After when set


class UpstreamTimeout(UpstreamError):
    status = 504


class UpstreamUnavailable(UpstreamError):
    status = 502


class NoHealthyReplica(UpstreamError):
    status = 503


class Overloaded(UpstreamError):
    status = 503

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
