"""Balancer overhead: our balancer process in front of a fast upstream, against the upstream
direct and against nginx as a `random two least_conn` proxy (nginx's power of two choices).

Upstream: one nginx worker answering a fixed JSON body on two ports (two "replicas"). Load:
wrk (Debian's `wrk`), GET `/v1/completions`, one thread:
- max requests/s: `--connections` connections (default 64), closed loop, `--duration` seconds;
- added latency: one connection, one request at a time: P50/P99 through the proxy minus direct.

    .venv/bin/python bench/balancer.py [--duration 10] [--connections 64] [--repeats 1]

Our balancer runs as the optimized stack runs it: p2c, health checks, load scraping, retry.
Goal: ≥ 10,000 requests/s per balancer process and ≤ 0.5 ms added P50. All three targets
share this machine's cores with wrk and the upstream, so compare them within one run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from stacks.launcher import health_ok
from stacks.process import free_port, spawn, stop_trees

UPSTREAM_CONF = """\
worker_processes 1;
daemon off;
pid {prefix}/upstream.pid;
error_log {prefix}/upstream-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix};
  server {{
    listen 127.0.0.1:{port_a};
    listen 127.0.0.1:{port_b};
    keepalive_requests 1000000;
    location / {{
      default_type application/json;
      return 200 '{{"usage":{{"prompt_tokens":8,"completion_tokens":4}}}}';
    }}
  }}
}}
"""
PROXY_CONF = """\
worker_processes 1;
daemon off;
pid {prefix}/proxy.pid;
error_log {prefix}/proxy-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix};
  upstream replicas {{
    random two least_conn;
    server 127.0.0.1:{port_a};
    server 127.0.0.1:{port_b};
    keepalive 128;
  }}
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    location / {{
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                   else None)
    if found is None:
        raise SystemExit(f"{name} is not installed; install Debian's package: "
                         f"apt-get install {name}")
    return found


def wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while not health_ok(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{url} did not start; see {log}")
        time.sleep(0.1)


def parse_wrk(output: str) -> WrkResult:
    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match is None:
            raise SystemExit(f"wrk printed no {percent}% latency:\n{output}")
        return float(match.group(1)) * UNITS_MS[match.group(2)]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise SystemExit(f"wrk printed no rate:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                        r"timeout (\d+)", output)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in sockets.groups()) if sockets else 0)
    return WrkResult(float(rate.group(1)), latency("50"), latency("99"), errors)


def wrk(url: str, connections: int, duration_s: float) -> WrkResult:
    done = subprocess.run(
        [tool("wrk"), "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--latency",
         f"{url}/v1/completions"], capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {done.stderr}")
    return parse_wrk(done.stdout)


def start_targets(workdir: Path) -> tuple[dict[str, str], list[subprocess.Popen[bytes]]]:
    """URLs of: the upstream direct, our balancer, nginx as a P2C proxy."""
    nginx = tool("nginx")
    port_a, port_b, ours, theirs = (free_port() for _ in range(4))
    processes = []
    (workdir / "upstream.conf").write_text(
        UPSTREAM_CONF.format(prefix=workdir, port_a=port_a, port_b=port_b))
    upstream = spawn([nginx, "-p", str(workdir), "-c", str(workdir / "upstream.conf")],
                     workdir / "upstream.log")
    processes.append(upstream)
    wait_up(f"http://127.0.0.1:{port_a}", upstream, workdir / "upstream.log")
    balancer = spawn([sys.executable, "-m", "stacks.balancer", "--port", str(ours),
                      "--policy", "p2c", "--health-interval-s", "1", "--load-interval-s", "0.5",
                      "--retry", "--replica", f"a=http://127.0.0.1:{port_a}",
                      "--replica", f"b=http://127.0.0.1:{port_b}"], workdir / "balancer.log")
    processes.append(balancer)
    wait_up(f"http://127.0.0.1:{ours}", balancer, workdir / "balancer.log")
    (workdir / "proxy.conf").write_text(
        PROXY_CONF.format(prefix=workdir, port=theirs, port_a=port_a, port_b=port_b))
    proxy = spawn([nginx, "-p", str(workdir), "-c", str(workdir / "proxy.conf")],
                  workdir / "proxy.log")
    processes.append(proxy)
    wait_up(f"http://127.0.0.1:{theirs}", proxy, workdir / "proxy.log")
    return {"upstream direct": f"http://127.0.0.1:{port_a}",
            "our balancer (p2c, 1 process)": f"http://127.0.0.1:{ours}",
            "nginx random two least_conn (1 worker)": f"http://127.0.0.1:{theirs}"}, processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=64, help="for max requests/s")
    parser.add_argument("--repeats", type=int, default=1)
    options = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="balancer-bench-") as temp:
        targets, processes = start_targets(Path(temp))
        try:
            table = Table(title="balancer overhead against a fixed-answer nginx upstream")
            for column in ("target", "max requests/s", "P50 (1 conn)", "P99 (1 conn)",
                           "added P50", "added P99", "errors"):
                table.add_column(column, justify="left" if column == "target" else "right")
            for repeat in range(options.repeats):
                unloaded = {name: wrk(url, 1, options.duration) for name, url in targets.items()}
                loaded = {name: wrk(url, options.connections, options.duration)
                          for name, url in targets.items()}
                direct = unloaded["upstream direct"]
                for name in targets:
                    added = name != "upstream direct"
                    table.add_row(
                        name + (f" · run {repeat + 1}" if options.repeats > 1 else ""),
                        f"{loaded[name].requests_per_s:,.0f}",
                        f"{unloaded[name].p50_ms:.3f} ms", f"{unloaded[name].p99_ms:.3f} ms",
                        f"{unloaded[name].p50_ms - direct.p50_ms:+.3f} ms" if added else "–",
                        f"{unloaded[name].p99_ms - direct.p99_ms:+.3f} ms" if added else "–",
                        str(loaded[name].errors + unloaded[name].errors))
                console.print(f"done: run {repeat + 1}")
        finally:
            stop_trees(processes)
        console.print(table)


if __name__ == "__main__":
    main()
