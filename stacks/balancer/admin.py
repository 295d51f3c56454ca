"""The balancer's admin interface: runtime membership, on its own port, bound to loopback.

    GET    /admin/replicas               every member: name, url, state, in flight
    POST   /admin/replicas               {"name": ..., "url": "http://HOST:PORT"}: add one
    POST   /admin/replicas/NAME/drain    no new requests; in-flight ones finish ("drained")
    DELETE /admin/replicas/NAME          drain, then forget it once its last request ends

Changes answer at once (201 or 202) with the replica's state; a caller that must wait for a
drain polls `GET /admin/replicas` (`stacks.balancer.admin_client` does). It speaks the same
HTTP as the data port (the same connection class and request limits), asks for the same API
key when one is set, and never forwards anything to a replica. Like Envoy's admin listener it
is reachable only from this machine: whoever can reach it can take every replica out.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from stacks.balancer.membership import Membership, MembershipRefused
from stacks.balancer.proxy import Exchange, Request, error_body

if TYPE_CHECKING:
    from collections.abc import Callable

ADMIN_HOST = "127.0.0.1"
PREFIX = b"/admin/replicas"
JSON = b"application/json"

Answer = tuple[int, bytes, bytes]


def answer(status: int, payload: object) -> Answer:
    return status, JSON, json.dumps(payload).encode()


class AdminRouter:
    """The proxy's `Router` for the admin port: every request is answered here."""

    def __init__(self, members: Membership, authorized: Callable[[Request], bool]) -> None:
        self.members = members
        self.authorized = authorized

    def answer_locally(self, request: Request) -> Answer:
        if not self.authorized(request):
            return 401, JSON, error_body(401, "missing or wrong API key: send "
                                              "authorization: Bearer <key>")
        path = request.path.split(b"?", 1)[0].rstrip(b"/")
        try:
            return self._route(request.method, path, request.body)
        except MembershipRefused as exc:
            return exc.status, JSON, error_body(exc.status, str(exc))

    def _route(self, method: bytes, path: bytes, body: bytes) -> Answer:
        if path == PREFIX:
            if method == b"GET":
                return answer(200, {"replicas": [r.describe()
                                                 for r in self.members.replicas.values()]})
            if method == b"POST":
                name, url = self._new_member(body)
                return answer(201, self.members.add(name, url).describe())
            raise MembershipRefused(405, f"{method.decode()} {PREFIX.decode()}: use GET or "
                                         "POST")
        if not path.startswith(PREFIX + b"/"):
            raise MembershipRefused(404, f"no admin route for {path.decode(errors='replace')}")
        name, _, action = path[len(PREFIX) + 1:].decode(errors="replace").partition("/")
        if method == b"POST" and action == "drain":
            return answer(202, self.members.drain(name).describe())
        if method == b"DELETE" and not action:
            return answer(202, self.members.remove(name).describe())
        raise MembershipRefused(404, f"no admin route for {method.decode()} "
                                     f"{path.decode(errors='replace')}")

    @staticmethod
    def _new_member(body: bytes) -> tuple[str, str]:
        try:
            fields = json.loads(body)
        except ValueError:
            raise MembershipRefused(400, 'body must be JSON: {"name": ..., "url": ...}') \
                from None
        if not isinstance(fields, dict) or not isinstance(fields.get("name"), str) \
                or not isinstance(fields.get("url"), str):
            raise MembershipRefused(400, 'body must be {"name": "<replica>", '
                                         '"url": "http://HOST:PORT"}')
        return fields["name"], fields["url"]

    # the rest of the Router protocol: nothing is ever proxied from this port ---------------
    def dispatch(self, exchange: Exchange) -> None:
        raise AssertionError("the admin port answers every request itself")

    def finish(self, exchange: Exchange, status: int) -> None:
        pass

    def retry_on_status(self, exchange: Exchange, status: int) -> bool:
        return False

    def retry(self, exchange: Exchange) -> None:
        pass

    def replica_lost(self, exchange: Exchange) -> bool:
        return False

    def refused(self, status: int) -> None:
        pass
