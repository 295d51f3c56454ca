"""Open-loop replay of a schedule inside Locust: senders, records, and when the test ends.

Locust users here are a pool of senders. Each takes the next request of the schedule, sleeps
until its send time (`anchor + offset_s`, an absolute deadline, so a slow answer never pushes
later sends back) and sends it; a send is late only when every sender is busy, and that
lateness is recorded (`sent_s - scheduled_s`), never hidden. The number of senders is the
schedule's `max_in_flight`, set by `ScheduleShape`, which also ends the test once every request
is recorded (each ends within its timeout, so none is dropped).

Distributed (`--master` / `--worker`): worker k of N replays requests k, k+N, k+2N...; workers
send their records to the master, which alone writes the records file. The anchor is one
wall-clock instant (`--start-at`, or set by the master when the test starts) shared by all.
Each worker measures its clock against the master's before its first send, and its records are
put on the master's clock, so a skew between hosts is recorded as send lag
(`workloads.clock_offset`).

Options (also from the environment): `--schedule` (HARNESS_SCHEDULE), `--records`
(HARNESS_RECORDS), `--model` (HARNESS_MODEL; asked of `/v1/models` when empty), `--start-at`
(HARNESS_START_AT, Unix seconds), `--api-key-env` (the name of a variable holding a bearer key).
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust import LoadTestShape, User, constant, events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from workloads.clock_offset import MasterClock, answer_probes
from workloads.openai_client import PATHS, Connection, first_model, request_body, send_scheduled
from workloads.records import COLUMNS, FLUSH_INTERVAL_S, RecordFile, read_record_lines
from workloads.schedule import ScheduleEntry, read_schedule

WORKLOADS_DIR = Path(__file__).resolve().parent
DEFAULT_SCHEDULE = WORKLOADS_DIR / "schedules" / "writing_assistant.jsonl"
# Test start to offset 0. One process spawns its senders within a second (`ScheduleShape`
# asks for them all at that count a second); a master's workers must also receive the anchor
# and measure their clocks against the master's first.
START_LEAD_S = 1.5
DISTRIBUTED_START_LEAD_S = 3.0
DRAIN_GRACE_S = 10.0  # after the last timeout, before unrecorded requests are given up on
IDLE_S = 0.5
SENT, FIRST_BYTE, DONE = (COLUMNS.index(name) for name in ("sent_s", "first_byte_s", "done_s"))
# gevent's loop waits in whole milliseconds with epoll (its Linux default), so a plain sleep
# wakes up to ~1 ms late; with the select backend (GEVENT_BACKEND=select, which the harness
# sets) it waits in microseconds. Senders sleep until this close to their send time, then
# yield to the loop until it comes: short with select, past the millisecond with epoll.
SPIN_S = {"select": 0.0002}.get(gevent.get_hub().loop.backend, 0.0015)
RECORDS_MESSAGE = "harness_records"


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any, **_: Any) -> None:
    parser.add_argument("--schedule", env_var="HARNESS_SCHEDULE", default=str(DEFAULT_SCHEDULE),
                        help="schedule file written by `harness schedule`")
    parser.add_argument("--records", env_var="HARNESS_RECORDS", default="records.jsonl",
                        help="records file to append (JSON lines)")
    parser.add_argument("--model", env_var="HARNESS_MODEL", default="",
                        help="model name to request; empty: the first of /v1/models")
    parser.add_argument("--start-at", env_var="HARNESS_START_AT", type=float, default=0.0,
                        help="Unix time of schedule offset 0; 0: a few seconds after start")
    parser.add_argument("--api-key-env", env_var="HARNESS_API_KEY_ENV", default="",
                        help="environment variable holding a bearer API key")


class Replay:
    """One process's share of the schedule, its clock, and where its records go."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        assert environment.parsed_options is not None  # attach_replay runs only under locust
        self.options: Any = environment.parsed_options
        path = Path(self.options.schedule)
        if not path.is_file():
            raise SystemExit(f"schedule file {path} not found: write one with `harness schedule "
                             "WORKLOAD --out FILE` and pass --schedule FILE")
        if not isinstance(environment.runner, WorkerRunner) and not environment.host:
            raise SystemExit("no endpoint to send to: pass --host URL (a stack's balancer or any "
                             "OpenAI-compatible server)")
        records = Path(self.options.records)
        if not isinstance(environment.runner, WorkerRunner) and records.exists() \
                and records.stat().st_size:
            raise SystemExit(f"records file {records} already exists; pass a new --records FILE "
                             "(records are never appended to another run's)")
        schedule, self.schedule_sha256 = read_schedule(path)
        self.header, self.entries = schedule.header, schedule.entries
        # The schedule lives as long as the process: keep it out of the collector's passes,
        # whose full sweeps over 10^5 objects would stall sends for milliseconds.
        gc.freeze()
        self.anchor_perf_s: float | None = None
        self._queue: list[ScheduleEntry] | None = None
        self._sharing: gevent.event.Event | None = None  # set once the share is taken
        self._bodies: list[bytes] = []
        self._next = 0
        self._pending: list[list[Any]] = []  # a worker's records not yet sent to the master
        self.master_clock = (MasterClock(environment.runner)
                             if isinstance(environment.runner, WorkerRunner) else None)
        self.clock_offset_s = 0.0  # a worker's: master's clock - its own (`clock_offset`)
        self.file: RecordFile | None = None  # opened at test start, where the anchor is fixed
        gevent.spawn(self._flush_forever)

    def start_lead_s(self) -> float:
        """The lead for this process's part: a master and its workers share the longer one."""
        distributed = isinstance(self.environment.runner, MasterRunner | WorkerRunner)
        return DISTRIBUTED_START_LEAD_S if distributed else START_LEAD_S

    # -- master or single process ---------------------------------------------------------
    def on_test_start(self) -> None:
        if not self.options.start_at:
            self.options.start_at = time.time() + self.start_lead_s()
        if not self.options.model:
            self.options.model = first_model(self.environment.host or "", self.headers())
        self.file = RecordFile(Path(self.options.records),
                               {"anchor_unix_s": self.options.start_at,
                                "schedule_sha256": self.schedule_sha256})

    def finished(self) -> bool:
        if self.file is None or not self.options.start_at:
            return False
        if self.file.count >= len(self.entries):
            return True
        deadline = (self.options.start_at + self.header["last_offset_s"]
                    + self.header["timeout_s"] + DRAIN_GRACE_S)
        return time.time() > deadline

    # -- every process that sends ---------------------------------------------------------
    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.options.api_key_env:
            headers["authorization"] = f"Bearer {os.environ[self.options.api_key_env]}"
        return headers

    def claim(self) -> tuple[ScheduleEntry, bytes] | None:
        """The next request this process sends, with its body, or None when its share is
        done. The first call takes this process's share and encodes every body up front,
        before the anchor, so encoding never delays a send; other senders wait for it."""
        if self._queue is None:
            if self._sharing is None:
                self._sharing = sharing = gevent.event.Event()
                try:
                    self._take_share()
                finally:  # taken, or failed: the others must not wait forever
                    sharing.set()
            self._sharing.wait()
        if self._queue is None:
            raise RuntimeError("this process's share of the schedule could not be taken")
        if self._next >= len(self._queue):
            return None
        self._next += 1
        return self._queue[self._next - 1], self._bodies[self._next - 1]

    def _take_share(self) -> None:
        runner = self.environment.runner
        index, count = 0, 1
        if isinstance(runner, WorkerRunner):
            index = runner.worker_index
            count = max(1, int(getattr(self.options, "expect_workers", 1) or 1))
        if self.master_clock is not None:  # waits for the master's answers: other senders
            self.clock_offset_s = self.master_clock.measure()  # wait on `_sharing`
        header, model = self.header, self.options.model
        queue = self.entries[index::count]
        self._bodies = [request_body(header["api"], model, entry.prompt, entry.max_tokens,
                                     header["stream"], header["ignore_eos"])
                        for entry in queue]
        start_at = self.options.start_at or time.time() + self.start_lead_s()
        self.anchor_perf_s = time.perf_counter() + (start_at - time.time())
        self._queue = queue

    def now_s(self) -> float:
        assert self.anchor_perf_s is not None
        return time.perf_counter() - self.anchor_perf_s

    def record(self, row: list[Any]) -> None:
        if self.clock_offset_s:  # a worker's times, put on the master's clock
            for column in (SENT, FIRST_BYTE, DONE):
                if row[column] is not None:
                    row[column] = round(row[column] + self.clock_offset_s, 6)
        if self.file is not None:
            self.file.add(row)
        else:
            self._pending.append(row)

    def receive(self, msg: Any, **_: Any) -> None:
        """The master's handler for a worker's batch of records."""
        if self.file is not None:
            self.file.add_many(msg.data)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
        elif self._pending and self.environment.runner is not None:
            rows, self._pending = self._pending, []
            self.environment.runner.send_message(RECORDS_MESSAGE, rows)

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()


@events.init.add_listener
def attach_replay(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None:  # imported by a tool, not run by locust
        return
    replay = Replay(environment)
    environment.replay = replay  # type: ignore[attr-defined]
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(RECORDS_MESSAGE, replay.receive)
        answer_probes(environment.runner)


@events.test_start.add_listener
def start_clock(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        environment.replay.on_test_start()  # type: ignore[attr-defined]


class RequestFailed(Exception):
    """A failed request as Locust's statistics list it: by its error class."""


@events.quitting.add_listener
def flush_records(environment: Environment, **_: Any) -> None:
    replay: Replay | None = getattr(environment, "replay", None)
    if replay is not None:
        replay.flush()
        if replay.file is not None:
            replay.file.close()
            report_to_locust(environment, replay.file.path, PATHS[replay.header["api"]])


def report_to_locust(environment: Environment, records: Path, name: str) -> None:
    """Give Locust's statistics every recorded request, so its closing table counts them.

    Done once, from the records, after the last send: Locust's per-request bookkeeping (and its
    periodic passes over what it keeps) stalled the senders for milliseconds at 5,000 QPS."""
    _, rows = read_record_lines(records)
    sent, done = COLUMNS.index("sent_s"), COLUMNS.index("done_s")
    ok, error = COLUMNS.index("ok"), COLUMNS.index("error")
    for row in rows:
        environment.stats.log_request("POST", name, (row[done] - row[sent]) * 1000, 0)
        if not row[ok]:
            environment.stats.log_error("POST", name, RequestFailed(row[error]))


def wait_until(now_s: Any, due_s: float) -> None:
    """Sleep until `due_s` on the `now_s` clock, to within a few microseconds."""
    delay_s = due_s - now_s()
    if delay_s > SPIN_S:
        gevent.sleep(delay_s - SPIN_S)
    while now_s() < due_s:
        gevent.sleep(0)


class ScheduleShape(LoadTestShape):
    """As many senders as the schedule allows in flight, until every request is recorded."""

    abstract = False

    def tick(self) -> tuple[int, float] | None:
        replay: Replay = self.runner.environment.replay  # type: ignore[union-attr, attr-defined]
        if replay.finished():
            return None
        senders = int(replay.header["max_in_flight"])
        return senders, senders


class ScheduledUser(User):
    """A sender: takes the next scheduled request, waits for its time, sends, records.

    It holds one keep-alive connection (`workloads.openai_client.Connection`, geventhttpclient
    as in `FastHttpUser`, without the session layers that saturate a process at 5,000 QPS)."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        self.replay: Replay = self.environment.replay  # type: ignore[attr-defined]
        header = self.replay.header
        self.path = PATHS[header["api"]]
        self.request_headers = self.replay.headers()
        assert self.host  # Replay refuses to start without one; workers get the master's
        self.connection = Connection(self.host)

    def send_next(self) -> None:
        claimed = self.replay.claim()
        if claimed is None:
            gevent.sleep(IDLE_S)  # share done; the shape ends the test once all are recorded
            return
        entry, body = claimed
        wait_until(self.replay.now_s, entry.offset_s)
        header = self.replay.header
        sent_s = self.replay.now_s()
        outcome = send_scheduled(self.connection, self.path, body, self.request_headers,
                                 header["stream"], header["timeout_s"], self.replay.now_s)
        done_s = self.replay.now_s()
        first_byte_s = None if outcome.first_byte_s is None else round(outcome.first_byte_s, 6)
        self.replay.record([entry.index, entry.offset_s, round(sent_s, 6), first_byte_s,
                            round(done_s, 6), outcome.status, outcome.ok, outcome.error,
                            outcome.prompt_tokens, outcome.output_tokens, outcome.replica])
