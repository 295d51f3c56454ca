"""How a stack spec becomes processes on this machine: vLLM replicas, then the balancer.

    with Stack(spec, log_dir) as stack:      # replicas start in parallel, then the balancer
        stack.endpoint                       # http://127.0.0.1:PORT, OpenAI-compatible

`start()` first prepares what the spec serves (`stacks.models.prepare`: the embedded model
built, a quantized engine pointed at its W8A8 copy) and opens the image the spec names
(`stacks.images.serve`), whose interpreter and model replicas run. Readiness is
`/health` answering 200 within the spec's startup timeout. If a replica dies or times out, the
error names it and shows the end of its log, and everything already started is stopped.
`stop()` runs on every way out of the `with` block. Once up, a replica that exits is started
again on its port (`stacks.supervisor`, the spec's `restart_policy: always`), each exit and
return logged in `events.jsonl`. Progress goes to an observer, so this module never prints.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from stacks.autoscaler.actuator import Autoscaler
from stacks.balancer.command import balancer_argv
from stacks.errors import HealthTimeout, ImageFetchError, StackStartError
from stacks.images.node import OpenedImage, runtime_env, runtime_model, runtime_python
from stacks.images.serve import StackImages
from stacks.models.prepare import prepare
from stacks.process import free_port, signal_group, spawn, stop_trees, tail
from stacks.spec import EngineSpec, StackSpec
from stacks.supervisor import Supervisor, describe

HEALTH_POLL_S = 0.5
SUPERVISOR_EVENTS = "events.jsonl"  # replicas exited and ready again
BALANCER_EVENTS = "balancer-events.jsonl"  # replicas ejected, back in rotation, added, removed
SCALING_EVENTS = "scaling.jsonl"  # the autoscaler's every observation, decision and action
REPLICA_HOST = "127.0.0.1"  # replicas are reached only through the balancer
VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
TASKSET = shutil.which("taskset")


class StartObserver(Protocol):
    def on_starting(self, name: str, log_path: Path) -> None: ...

    def on_ready(self, name: str, elapsed_s: float) -> None: ...


class QuietObserver:
    def on_starting(self, name: str, log_path: Path) -> None:
        pass

    def on_ready(self, name: str, elapsed_s: float) -> None:
        pass


@dataclass(slots=True)
class Member:
    """One process of a running stack: a replica or the balancer, and how to start it again."""

    name: str
    host: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    reap_group: bool = False  # a process tree, taken down whole with its launcher
    nice: int = 0
    retired: bool = False  # stopped on purpose (scaled down): never started again

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def exit_code(self) -> int | None:
        """How it exited; None while it runs, and for a replica retired on purpose."""
        return None if self.retired else self.process.poll()

    def retire(self) -> None:
        """Stop its whole tree for good: the supervisor leaves a retired member alone."""
        self.retired = True
        stop_trees([self.process])

    def restart(self) -> None:
        """Start it again, on the same port, after reaping what is left of its process tree."""
        stop_trees([self.process], grace_s=0)
        self.process = spawn(self.argv, self.log_path, self.env, self.reap_group, self.nice)

    def healthy(self) -> bool:
        return health_ok(self.url)

    def signal(self, sig: signal.Signals) -> None:
        """Signal its whole process tree (a replica: reaper, API servers, engine, workers):
        how faults are planted (SIGKILL, SIGSTOP, SIGCONT)."""
        signal_group(self.process.pid, sig)


def replica_argv(spec: StackSpec, port: int, image: Path | None = None) -> list[str]:
    """The replica's command line: this machine's interpreter and model, or, with `image`
    (the root of an unpacked or mounted image), the image's, under the same served name."""
    engine = spec.engine
    python = runtime_python(image) if image else Path(sys.executable)
    model = runtime_model(image) if image else engine.model_path()
    argv = [str(python), "-m", VLLM_SERVER_MODULE, "--model", str(model),
            "--host", REPLICA_HOST, "--port", str(port)]
    served_name = engine.served_model_name or (str(engine.model_path()) if image else None)
    if served_name:
        argv += ["--served-model-name", served_name]
    return argv + engine_options(engine)


def engine_options(engine: EngineSpec) -> list[str]:
    """The spec's vLLM options beyond model, address and name: API servers and `args`."""
    argv = []
    if engine.api_server_count > 1:
        argv += ["--api-server-count", str(engine.api_server_count)]
    for key, value in engine.args.items():
        if value is True:
            argv.append(f"--{key}")
        elif value is False:
            argv.append(f"--no-{key}")
        elif value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def auto_binding(index: int, replicas: int, cores: list[int]) -> str:
    """An equal, disjoint share of the cores for replica `index` (wrapping if there are more
    replicas than cores): on 2 cores, replica 0 gets core 0 and replica 1 core 1."""
    share = max(1, len(cores) // replicas)
    first = (index * share) % len(cores)
    return ",".join(str(core) for core in cores[first:first + share])


def replica_cores(spec: StackSpec, index: int) -> str | None:
    """The cores replica `index` is bound to ("0", "2,3"...), or None where vLLM chooses."""
    binding = spec.cpu.binding
    if binding == "auto":
        return auto_binding(index, spec.replica_slots, sorted(os.sched_getaffinity(0)))
    if isinstance(binding, list):
        return binding[index % len(binding)]
    return None


# vLLM's ahead-of-time compile cache: the CPU build (0.32.0) saves it but cannot load it back
# ('finalize_loading'), so with it on every start compiles again: 13-16 s of engine init,
# against 5.5-6 s with the older compile cache this selects, at the same throughput
# (docs/findings.md). A defect of the engine build, so every stack gets it; the environment
# or a spec's `engine.env` may still set it.
ENGINE_ENV_DEFAULTS = {"VLLM_USE_AOT_COMPILE": "0"}


def replica_env(spec: StackSpec, index: int) -> dict[str, str]:
    env = {**ENGINE_ENV_DEFAULTS, **os.environ, **spec.engine.env}
    cores = replica_cores(spec, index)
    if cores is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = cores
    return env


def pinned(argv: list[str], spec: StackSpec, index: int) -> list[str]:
    """With `cpu.pin: replica`, the replica's every process confined to its cores."""
    return on_cores(argv, replica_cores(spec, index) if spec.cpu.pin == "replica" else None,
                    spec.name)


def on_cores(argv: list[str], cores: str | None, stack: str) -> list[str]:
    """argv confined to `cores` through util-linux's `taskset`, which execs it in place (its
    children inherit the mask); unchanged where `cores` is None."""
    if cores is None:
        return argv
    if TASKSET is None:
        raise StackStartError(f"{stack}: cpu.pin: replica needs util-linux's taskset; "
                              "install it, or set cpu.pin: threads")
    return [TASKSET, "--cpu-list", cores, *argv]


@dataclass(frozen=True, slots=True)
class HelperCores:
    balancer: str | None
    load_generator: str | None


def helper_cores(spec: StackSpec) -> HelperCores:
    """Where the balancer and the load generator run beside a stack whose replicas are
    pinned: the balancer on the first replica's cores, the load generator on the last one's.
    Left to the scheduler, each lands on either core, differently from run to run (measured:
    Locust, 4.5 % of a core at 64 QPS, on core 0 in one run and core 1 in the next), and the
    replica it shares a core with answers 5–10 % slower: a fixed place makes that the same in
    every run, and spreading them keeps either replica from carrying both. None: anywhere."""
    if spec.cpu.pin != "replica":
        return HelperCores(None, None)
    return HelperCores(replica_cores(spec, 0), replica_cores(spec, spec.replica_slots - 1))


def health_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether `url`/health answers 200 right now."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or REPLICA_HOST, parts.port,
                                            timeout=timeout_s)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class Stack:
    """A running stack: replicas and balancer, stopped together."""

    def __init__(self, spec: StackSpec, log_dir: Path, port: int | None = None,
                 images: StackImages | None = None) -> None:
        self.spec = spec
        # Where replicas run from when the spec names an image (the caller may bring its own,
        # with its registry's settings); the image opened on this node, once started.
        self.images = images
        self.image: OpenedImage | None = None
        self.ready_s: dict[str, float] = {}  # spawned → healthy, per member, on this start
        self.log_dir = Path(log_dir)
        self.observer: StartObserver = QuietObserver()
        self.port = port if port is not None else spec.ports.balancer
        self.replicas: list[Member] = []
        self.balancer: Member | None = None
        self.admin_url = ""  # the balancer's loopback admin interface (runtime membership)
        self.supervisor: Supervisor | None = None
        self.autoscaler: Autoscaler | None = None

    @property
    def endpoint(self) -> str:
        if self.balancer is None:
            raise StackStartError(f"stack {self.spec.name} is not running")
        return self.balancer.url

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, observer: StartObserver | None = None) -> str:
        if self.balancer is not None or self.replicas:
            raise StackStartError(f"stack {self.spec.name} is already started")
        self.observer = observer or QuietObserver()
        self.spec = prepare(self.spec)
        try:
            if self.spec.image.mode != "none":
                self.images = self.images or StackImages(self.spec)
                self.image = self.images.open()
            for index in range(self.spec.initial_replicas):
                self.replicas.append(self.start_replica(index))
            self._wait_healthy(self.replicas)
            if self.images is not None:
                self.images.record_plan()
            self.balancer = self._start_balancer()
            self._wait_healthy([self.balancer])
            if self.spec.restart_policy == "always":
                self.supervisor = Supervisor(lambda: self.replicas,
                                             self.log_dir / SUPERVISOR_EVENTS)
                self.supervisor.start()
            if self.spec.autoscaling is not None:
                self.autoscaler = Autoscaler(self, self.log_dir / SCALING_EVENTS)
                self.autoscaler.start()
        except BaseException:
            self.stop()
            raise
        return self.endpoint

    def start_replica(self, index: int) -> Member:
        """Spawn replica `index` (its slot: name, port base, cores); it is a member of the
        stack and its balancer only once the caller adds it."""
        base = self.spec.ports.replica_base
        port = base + index if base else free_port()
        name = f"replica-{index}"
        log_path = self.log_dir / f"{name}.log"
        root = self.image.root if self.image is not None else None
        command = replica_argv(self.spec, port, root) if root else replica_argv(self.spec, port)
        argv = pinned(command, self.spec, index)
        env = replica_env(self.spec, index)
        if root is not None:
            env = runtime_env(root, env)
        process = spawn(argv, log_path, env, reap_group=True, nice=self.spec.cpu.nice)
        self.observer.on_starting(name, log_path)
        return Member(name, REPLICA_HOST, port, log_path, process, argv, env, reap_group=True,
                      nice=self.spec.cpu.nice)

    def _start_balancer(self) -> Member:
        port = self.port or free_port(self.spec.balancer.host)
        log_path = self.log_dir / "balancer.log"
        admin_port = free_port(REPLICA_HOST)
        argv = on_cores(balancer_argv(self.spec, self.replicas, port, admin_port,
                                      self.log_dir / BALANCER_EVENTS),
                        helper_cores(self.spec).balancer, self.spec.name)
        process = spawn(argv, log_path, nice=self.spec.cpu.nice)
        self.admin_url = f"http://{REPLICA_HOST}:{admin_port}"
        self.observer.on_starting("balancer", log_path)
        return Member("balancer", self.spec.balancer.host, port, log_path, process)

    def _wait_healthy(self, members: list[Member]) -> None:
        started = time.monotonic()
        deadline = started + self.spec.startup_timeout_s
        waiting = list(members)
        while waiting:
            for member in list(waiting):
                code = member.process.poll()
                if code is not None and self.images and (failure := self.images.fetch_failure()):
                    raise ImageFetchError(f"{self.spec.name}/{member.name} exited while "
                                          f"starting from its image: {failure}")
                if code is not None:
                    raise StackStartError(
                        f"{self.spec.name}/{member.name} exited with code {code} while starting; "
                        f"last lines of {member.log_path}:\n{tail(member.log_path)}"
                    )
                if health_ok(member.url):
                    waiting.remove(member)
                    self.ready_s[member.name] = time.monotonic() - started
                    self.observer.on_ready(member.name, self.ready_s[member.name])
            if waiting and time.monotonic() > deadline:
                member = waiting[0]
                raise HealthTimeout(
                    f"{self.spec.name}/{member.name} not healthy after "
                    f"{self.spec.startup_timeout_s:.0f}s; last lines of {member.log_path}:\n"
                    f"{tail(member.log_path)}"
                )
            if waiting:
                time.sleep(HEALTH_POLL_S)

    @property
    def served_model(self) -> str:
        """The model name clients ask for: the served name, else the model's path."""
        return self.spec.engine.served_model_name or str(self.spec.engine.model_path())

    def hold(self, say: Callable[[str], None], poll_s: float = 1.0) -> None:
        """Keep serving until KeyboardInterrupt ends it; raise if the balancer dies. Each
        replica that exits, and each return to health, is said as it happens."""
        lost: set[str] = set()
        said = 0
        while True:
            time.sleep(poll_s)
            if self.balancer is not None and (code := self.balancer.process.poll()) is not None:
                raise StackStartError(f"{self.spec.name}/balancer exited with code {code}; "
                                      f"see {self.balancer.log_path}")
            if self.supervisor is not None:
                for event in self.supervisor.events[said:]:
                    say(describe(event))
                said = len(self.supervisor.events)
                continue
            for replica in self.replicas:
                if (code := replica.exit_code()) is not None and replica.name not in lost:
                    lost.add(replica.name)
                    say(f"{replica.name} exited with code {code}; see {replica.log_path}")

    def stop(self) -> None:
        """The autoscaler first (it starts and stops nothing more), then the balancer (no new
        work reaches replicas), then every replica, each whole tree; the supervisor restarts
        none of them meanwhile."""
        if self.autoscaler is not None:
            self.autoscaler.close()
            self.autoscaler = None
        if self.supervisor is not None:
            self.supervisor.pause()
        if self.balancer is not None:
            stop_trees([self.balancer.process])
        stop_trees([replica.process for replica in self.replicas])
        if self.supervisor is not None:
            self.supervisor.close()
        if self.images is not None:
            self.images.close()
        self.supervisor = None
        self.balancer = None
        self.replicas = []

