"""Why the balancer could not get an answer from a replica, and the status each one maps to.

    UpstreamError           (502)
    ├── UpstreamTimeout     504: no complete answer within the upstream timeout
    ├── UpstreamUnavailable 502: the connection was refused, reset or closed mid-answer
    └── NoHealthyReplica    503: nothing to send the request to
"""


class UpstreamError(Exception):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504


class UpstreamUnavailable(UpstreamError):
    status = 502


class NoHealthyReplica(UpstreamError):
    status = 503
