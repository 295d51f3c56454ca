"""Child processes of a stack: spawned from argv lists, each in its own process group, logged
to a file, and stopped with their whole tree.

A vLLM replica is three or more processes (API server, EngineCore, workers, extra API servers);
signalling the group reaches them all, and descendants found before signalling are killed too,
in case one left the group.

A child dies with the process that started it, however that one ends (SIGKILL included), so a
killed harness or launcher leaves no replica, balancer or load generator behind to steal the
cores. A single process is started through util-linux's `setpriv --pdeathsig KILL`; a tree
(`reap_group`: a vLLM replica, whose engine and workers the kernel's signal would not reach)
under `stacks.reaper`, which takes the whole group down. Where `setpriv` is missing, a single
process outlives a killed parent, as plain `Popen` children do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

SETPRIV = shutil.which("setpriv")
NICE = shutil.which("nice")


def spawn(argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
          reap_group: bool = False, nice: int = 0) -> subprocess.Popen[bytes]:
    """Start `argv` (never a shell string) in a new session, stdout and stderr to `log_path`;
    it is killed when this process ends (see the module docstring). `nice` > 0 runs it (and
    what it starts) at that lower CPU priority, through coreutils' `nice`, which execs it in
    place."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if nice > 0 and NICE:
        argv = [NICE, "-n", str(nice), *argv]
    if reap_group:
        wrapped = [sys.executable, "-m", "stacks.reaper", "--", *argv]
    else:  # setpriv execs the command in place: same pid, same command line once started
        wrapped = [SETPRIV, "--pdeathsig", "KILL", "--", *argv] if SETPRIV else list(argv)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            wrapped,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    if nice > 0:
        set_autogroup_nice(process.pid, nice)
    return process


def set_autogroup_nice(pid: int, nice: int) -> None:
    """Where the kernel groups each session's processes for the CPU scheduler (autogroup,
    on by default in Debian), a new session gets its own group, weighed against every other
    at equal share whatever its processes' niceness: only the group's own nice lowers it.
    Without autogroup there is no such file, and the processes' niceness is what counts."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def stop_trees(processes: Sequence[subprocess.Popen[bytes]], grace_s: float = 10.0) -> None:
    """SIGTERM each process group, wait up to `grace_s` for all, then SIGKILL what is left."""
    descendants: list[psutil.Process] = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            descendants += psutil.Process(process.pid).children(recursive=True)
    for process in processes:
        signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    _, alive = psutil.wait_procs(_alive(descendants), timeout=max(0.5, deadline - time.monotonic()))
    for process in processes:
        signal_group(process.pid, signal.SIGKILL)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()
    psutil.wait_procs(_alive(descendants), timeout=5)
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group (a spawned process leads its own); gone already is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_ready(ready: Callable[[], bool], process: subprocess.Popen[bytes],
               timeout_s: float, poll_s: float = 0.02) -> bool:
    """Poll `ready` until it holds (True), or until `process` exits or `timeout_s` passes
    (False): how a helper that signals readiness by a socket, a file or a mount is awaited."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file, for error messages."""
    try:
        with path.open("rb") as handle:
            return b"".join(deque(handle, maxlen=lines)).decode(errors="replace").rstrip()
    except OSError:
        return "(no log written)"
