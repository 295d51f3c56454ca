"""The balancer process: replicas, a policy, and the server lifecycle.

Lifecycle as in uvicorn: `startup` binds the sockets, `main_loop` waits for `should_exit`,
`shutdown` stops accepting, waits briefly for in-flight exchanges and closes upstream pools.
`Balancer` is the proxy's `Router`: it answers `/health` and `/metrics` itself, picks a replica
for each `/v1/...` request with the policy, and keeps each replica's in-flight count around the
upstream call (the count policies compare).

Policies of its own, each off unless configured (the optimized stack turns them on):
- health checks (`health_interval_s`): a replica failing `/health` twice in a row, or refusing
  a connection (a probe's or a request's), is ejected, and comes back when `/health` answers
  200;
- load scraping (`load_interval_s`): each replica's reported running + waiting requests beyond
  ours, for load-aware policies;
- one retry (`retry`): a request whose replica refused or dropped the connection, answered
  502/503 or ran past the per-attempt timeout before any byte went to the client goes once to
  another serving replica, within the retry budget if one is set. Nothing is retried once the
  client has seen part of an answer;
- the defences of `stacks.balancer.defences`: outlier detection (`outlier`), a retry budget
  (`retry_budget`), a per-attempt timeout (`per_try_timeout_s`) and admission control
  (`admission`).

Its replicas can change while it serves (`membership`), through a loopback admin port
(`admin_port`, `stacks.balancer.admin`): added, drained or removed without failing a request.
They can also be found by name (`discover`, `stacks.balancer.discovery`): every address of a
Kubernetes headless Service, followed as pods come and go.

At its edge, for every stack: the request limits of `proxy.Limits`, and an optional API key
(`api_key`): a `/v1/...` request without `authorization: Bearer <key>` is a 401 and reaches no
replica. The key is compared in constant time and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from stacks.balancer.admin import ADMIN_HOST, AdminRouter
from stacks.balancer.defences import Admission, OutlierDetection, RetryBudget
from stacks.balancer.discovery import DnsDiscovery
from stacks.balancer.errors import (
    NoHealthyReplica,
    Overloaded,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from stacks.balancer.health import ReplicaMonitor
from stacks.balancer.limits import Limits
from stacks.balancer.membership import Membership
from stacks.balancer.metrics import BalancerMetrics
from stacks.balancer.policies import ReplicaView, make_policy
from stacks.balancer.proxy import ClientConnection, Exchange, Request
from stacks.balancer.upstream import UpstreamConnection, UpstreamPool
from stacks.event_log import EventLog

PROXIED_PREFIX = b"/v1/"
NO_REPLICA = "none"
RETRIED_STATUSES = frozenset({502, 503})  # the replica says it could not take the request
logger = logging.getLogger("balancer")


@dataclass(slots=True)
class BalancerConfig:
    replicas: dict[str, str]  # name -> base URL (http://host:port)
    policy: str = "round_robin"
    host: str = "127.0.0.1"
    port: int = 8080
    admin_port: int | None = None  # None: no admin interface; 0: any free loopback port
    seed: int = 0
    upstream_timeout_s: float = 600.0
    shutdown_grace_s: float = 5.0
    health_interval_s: float = 0.0  # 0: no health checks, no ejection
    load_interval_s: float = 0.0  # 0: no load scraping
    retry: bool = False
    outlier: OutlierDetection | None = None
    retry_budget: RetryBudget | None = None
    per_try_timeout_s: float = 0.0  # 0: an attempt may take the whole upstream timeout
    admission: Admission | None = None
    limits: Limits = field(default_factory=Limits)
    api_key: str = ""  # "": no key asked of clients
    events_path: Path | None = None  # membership events, one JSON line each
    discover: str | None = None  # HOST:PORT: every address HOST resolves to is a replica
    discover_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.replicas and not self.discover:
            raise ValueError("a balancer needs at least one replica, or a name to discover "
                             "them by")

    def __repr__(self) -> str:  # the key stays out of every log line and traceback
        return f"BalancerConfig(replicas={self.replicas!r}, policy={self.policy!r}, ...)"


class Balancer:
    def __init__(self, config: BalancerConfig) -> None:
        self.config = config
        self.policy = make_policy(config.policy, random.Random(config.seed))
        self.metrics = BalancerMetrics()
        self.members = Membership(self.metrics, config.health_interval_s > 0, self.log,
                                  EventLog(config.events_path), config.outlier)
        self.retries_in_flight = 0
        for name, url in config.replicas.items():
            self.members.add(name, url, at_start=True)
        self.should_exit = asyncio.Event()
        self.inflight_total = 0
        self._server: asyncio.Server | None = None
        self._admin: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._draining: asyncio.Event | None = None  # set once the last exchange finishes
        self._monitors: list[asyncio.Task[None]] = []
        self.discovery = DnsDiscovery(self.members, config.discover, config.discover_interval_s,
                                      self.log) if config.discover else None

    # lifecycle ----------------------------------------------------------------------------
    async def serve(self) -> None:
        await self.startup()
        try:
            await self.main_loop()
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        if self.discovery is not None:  # the replicas that resolve now, before serving
            await self.discovery.refresh()
            self._monitors.append(loop.create_task(self.discovery.run()))
        self._server = await loop.create_server(
            lambda: ClientConnection(self, self.config.limits), self.config.host,
            self.config.port, backlog=4096
        )
        config = self.config
        if config.admin_port is not None:
            admin = AdminRouter(self.members, self._authorized)  # the same key, if any
            self._admin = await loop.create_server(
                lambda: ClientConnection(admin, config.limits), ADMIN_HOST, config.admin_port)
            logger.info("admin interface on %s:%d", ADMIN_HOST, self.admin_port)
        for interval_s, health, load in ((config.health_interval_s, True, False),
                                         (config.load_interval_s, False, True)):
            if interval_s > 0:
                monitor = ReplicaMonitor(self, interval_s, check_health=health,
                                         scrape_load=load, log=self.log)
                self._monitors.append(loop.create_task(monitor.run()))

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def admin_port(self) -> int | None:
        return None if self._admin is None else int(self._admin.sockets[0].getsockname()[1])

    async def main_loop(self) -> None:
        await self.should_exit.wait()

    async def shutdown(self) -> None:
        for monitor in self._monitors:
            monitor.cancel()
        for server in (self._server, self._admin):
            if server is not None:
                server.close()
        if self.inflight_total:
            self._draining = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.shutdown_grace_s):
                    await self._draining.wait()
        for replica in self.members.replicas.values():
            replica.pool.close()

    # health and load ----------------------------------------------------------------------
    @staticmethod
    def log(message: str) -> None:
        logger.warning(message)

    def replica_addresses(self) -> dict[str, tuple[str, int]]:
        return {name: (r.pool.host, r.pool.port) for name, r in self.members.replicas.items()}

    def health_result(self, name: str, healthy: bool, refused: bool = False) -> None:
        self.members.health_result(name, healthy, refused)

    def load_result(self, name: str, scraped: int) -> None:
        replica = self.members.get(name)
        if replica is None:  # removed while its scrape was on the way
            return
        # The replica's count includes what we have in flight there; keep the rest.
        replica.view.external = max(0, scraped - replica.view.inflight)
        self.metrics.set_external(name, replica.view.external)

    def _others(self, exchange: Exchange) -> list[ReplicaView]:
        """Serving replicas that have not failed this request yet."""
        tried = (exchange.retried_from, exchange.replica)
        return [view for view in self.members.serving if view.name not in tried]

    def _can_retry(self, exchange: Exchange) -> bool:
        """Once per request, only with another replica to go to, and within the budget."""
        if not self.config.retry or exchange.retried_from or not self._others(exchange):
            return False
        budget = self.config.retry_budget
        if budget is not None and not budget.allows(self.retries_in_flight, self.inflight_total):
            self.metrics.retry_refused()
            return False
        return True

    # Router -------------------------------------------------------------------------------
    def answer_locally(self, request: Request) -> tuple[int, bytes, bytes] | None:
        path = request.path.split(b"?", 1)[0]
        if path.startswith(PROXIED_PREFIX):
            if not self._authorized(request):
                return 401, b"application/json", json.dumps({"error": {
                    "message": "missing or wrong API key: send authorization: Bearer <key>",
                    "type": "balancer_error", "code": 401}}).encode()
            return None
        if path == b"/health":
            healthy = len(self.members.serving)
            body = json.dumps({"healthy_replicas": healthy, "replicas": len(self.members)})
            return (200 if healthy else 503), b"application/json", body.encode()
        if path == b"/metrics":
            return 200, self.metrics.content_type.encode(), self.metrics.render()
        message = {"error": {"message": f"no route for {path.decode(errors='replace')}",
                             "type": "balancer_error", "code": 404}}
        return 404, b"application/json", json.dumps(message).encode()

    def _authorized(self, request: Request) -> bool:
        if not self.config.api_key:
            return True
        expected = b"Bearer " + self.config.api_key.encode()
        given = next((value for name, value in request.headers
                      if name.lower() == b"authorization"), b"")
        return hmac.compare_digest(given, expected)

    def refused(self, status: int) -> None:
        self.metrics.observe(NO_REPLICA, status, None)

    def dispatch(self, exchange: Exchange) -> None:
        if not exchange.replica:
            views = self._others(exchange) if exchange.retried_from else self.members.serving
            if not views:
                exchange.fail(NoHealthyReplica("no healthy replica to send the request to"))
                return
            admission = self.config.admission
            if admission is not None and not exchange.retried_from \
                    and not admission.admits(views):
                self.metrics.admission_refused()
                exchange.fail(Overloaded(
                    f"every replica has {admission.queue_limit} or more requests; retry in "
                    f"{admission.retry_after_s} s", admission.retry_after_s))
                return
            view = self.policy.choose(views)
            exchange.replica = view.name
            view.inflight += 1
            self.inflight_total += 1
            self.metrics.set_inflight(view.name, view.inflight)
            loop = asyncio.get_running_loop()
            exchange.timer = loop.call_later(
                self.config.upstream_timeout_s, self._time_out, exchange
            )
        exchange.attempts += 1
        if self.config.per_try_timeout_s > 0:
            _cancel_attempt_timer(exchange)
            exchange.attempt_timer = asyncio.get_running_loop().call_later(
                self.config.per_try_timeout_s, self._attempt_late, exchange)
        pool = self.members[exchange.replica].pool
        conn = pool.take_idle()
        if conn is not None:
            self._send(exchange, conn)
        else:
            task = asyncio.get_running_loop().create_task(self._connect_and_send(exchange, pool))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _connect_and_send(self, exchange: Exchange, pool: UpstreamPool) -> None:
        attempt = exchange.attempts
        try:
            conn = await pool.connect()
        except (OSError, TimeoutError) as exc:
            if exchange.done:
                return
            if exchange.attempts != attempt:  # abandoned meanwhile (per-attempt timeout)
                return
            self.members.attempt_done(exchange.replica, False,
                                      refused=isinstance(exc, ConnectionRefusedError))
            if self._can_retry(exchange):
                self.retry(exchange, 502)
                return
            exchange.fail(UpstreamUnavailable(f"replica {exchange.replica} unreachable: {exc}"))
            return
        if exchange.done or exchange.attempts != attempt:
            pool.release(conn)
            return
        self._send(exchange, conn)

    def _send(self, exchange: Exchange, conn: UpstreamConnection) -> None:
        exchange.upstream = conn
        conn.send(exchange.encode_request(conn.pool.host_header), exchange)

    def _time_out(self, exchange: Exchange) -> None:
        self.members.attempt_done(exchange.replica, False)
        timeout = self.config.upstream_timeout_s
        exchange.fail(UpstreamTimeout(f"replica {exchange.replica} gave no answer in {timeout}s"))

    def _attempt_late(self, exchange: Exchange) -> None:
        """The per-attempt timeout: abandon an attempt that has not started to answer."""
        exchange.attempt_timer = None
        if exchange.done or exchange.head_sent:
            return
        exchange.drop_upstream()
        exchange.attempts += 1  # a connection still being made belongs to no attempt now
        self.members.attempt_done(exchange.replica, False)
        if self._can_retry(exchange):
            self.retry(exchange, 504)
            return
        exchange.fail(UpstreamTimeout(f"replica {exchange.replica} did not start to answer "
                                      f"within {self.config.per_try_timeout_s:g}s"))

    def retry_on_status(self, exchange: Exchange, status: int) -> bool:
        _cancel_attempt_timer(exchange)
        self.members.attempt_done(exchange.replica, status < 500)
        return status in RETRIED_STATUSES and self._can_retry(exchange)

    def retry(self, exchange: Exchange, status: int | None = None) -> None:
        """Close the failed attempt's books and send the request once more, elsewhere."""
        failed = exchange.replica
        self.finish(exchange, status if status is not None else exchange.status)
        self.metrics.retried(failed)
        self.retries_in_flight += 1  # until its retry finishes
        exchange.retried_from = failed
        exchange.replica = ""
        exchange.status = 0
        self.dispatch(exchange)

    def replica_lost(self, exchange: Exchange) -> bool:
        """A connection dropped before any byte reached the client (a replica killed with the
        request on it) is retried elsewhere, like Envoy's `retry_on: reset`."""
        self.members.attempt_done(exchange.replica, False)
        if exchange.head_sent or not self._can_retry(exchange):
            return False
        self.retry(exchange, 502)
        return True

    def finish(self, exchange: Exchange, status: int) -> None:
        if exchange.timer is not None:
            exchange.timer.cancel()
            exchange.timer = None
        _cancel_attempt_timer(exchange)
        if exchange.retried_from:  # the retry itself is done
            self.retries_in_flight -= 1
        replica = self.members.get(exchange.replica)
        if replica is None:
            self.metrics.observe(NO_REPLICA, status, None)
            return
        replica.view.inflight -= 1
        self.inflight_total -= 1
        if self._draining is not None and not self.inflight_total:
            self._draining.set()
        self.metrics.set_inflight(replica.view.name, replica.view.inflight)
        ok = status < 500
        self.policy.on_done(replica.view.name, ok)
        self.metrics.observe(replica.view.name, status, time.perf_counter() - exchange.started_s)
        self.members.request_done(replica)


def _cancel_attempt_timer(exchange: Exchange) -> None:
    if exchange.attempt_timer is not None:
        exchange.attempt_timer.cancel()
        exchange.attempt_timer = None
