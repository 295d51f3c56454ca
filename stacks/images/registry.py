"""The image registry: a blob server on loopback that behaves like one across a network.

    with Registry(IMAGES_DIR / "registry", bandwidth_mbps=400, latency_ms=10) as registry:
        push(built_manifest_path, registry.root)        # blob + manifest, by digest
        registry.url                                    # http://127.0.0.1:PORT

Debian's nginx serves the files: `blobs/sha256/<hex>` (HTTP range requests included, which
the lazy fetcher needs) and `manifests/<stack>.json`. Each response waits `latency_ms` before
its first byte (the echo module's `echo_sleep`, in whole ms, then an internal redirect to the
file). Nodes reach it through a link (`stacks.images.link`) that carries `bandwidth_mbps` per
connection; both fetchers use one connection, so that is the bandwidth each sees. Every
response is logged with its size, so the bytes a start fetched are counted where they are
served, the same way for eager and lazy.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from stacks.errors import ImageError
from stacks.images.manifest import ImageManifest, blob_name
from stacks.process import free_port, spawn, stop_trees, wait_ready

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
DEFAULT_BANDWIDTH_MBPS = 400.0  # 50 MB/s: a pull within one cloud region
DEFAULT_LATENCY_MS = 10.0  # per request, before its first byte: a registry a few hops away
START_TIMEOUT_S = 10.0
APT_HINT = ("install Debian's nginx-light and libnginx-mod-http-echo "
            "(`make image-tools` does)")

NGINX_CONF = """\
load_module {echo_module};
daemon off;
master_process off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {run}/client_body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    default_type application/octet-stream;
    sendfile on;  # off by default: nginx would copy every blob through its own buffers
    log_format served '$msec $request_method $uri $status $body_bytes_sent';
    access_log {run}/served.log served;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            {before_first_byte}
        }}
        location @file {{
            root {root};
        }}
    }}
}}
"""


class Registry:
    """A running blob server over `root`; a context manager, stopped on every way out."""

    def __init__(self, root: Path, bandwidth_mbps: float = DEFAULT_BANDWIDTH_MBPS,
                 latency_ms: float = DEFAULT_LATENCY_MS, run_dir: Path | None = None) -> None:
        if bandwidth_mbps <= 0:
            raise ImageError(f"registry bandwidth must be above 0 Mbit/s, got {bandwidth_mbps}")
        if latency_ms < 0:
            raise ImageError(f"registry latency must be 0 ms or more, got {latency_ms}")
        self.root = Path(root).resolve()
        self.bandwidth_mbps = bandwidth_mbps
        self.latency_ms = latency_ms
        self.run_dir = Path(run_dir or self.root.parent / "registry-run").resolve()
        self.port = 0  # the link's: where nodes connect
        self.process: subprocess.Popen[bytes] | None = None  # nginx
        self.link: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Registry:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if not (os.access(NGINX, os.X_OK) and ECHO_MODULE.is_file()):
            raise ImageError(f"the image registry needs nginx with its echo module: {APT_HINT}")
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        served = free_port()
        conf = self.run_dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            echo_module=ECHO_MODULE, run=self.run_dir, port=served, root=self.root,
            before_first_byte=_delay(self.latency_ms)))
        self.served_log.write_text("")
        self.process = spawn([NGINX, "-p", str(self.run_dir), "-c", str(conf)],
                             self.run_dir / "nginx.log")
        if not wait_ready(lambda: _listening(served), self.process, START_TIMEOUT_S):
            self.stop()
            raise ImageError(f"the image registry (nginx) did not start; see "
                             f"{self.run_dir / 'error.log'} and {self.run_dir / 'nginx.log'}")
        self.port = free_port()
        self.link = spawn([sys.executable, "-m", "stacks.images.link", "--port", str(self.port),
                           "--upstream", str(served), "--bandwidth-mbps",
                           str(self.bandwidth_mbps)], self.run_dir / "link.log")
        if not wait_ready(lambda: _listening(self.port), self.link, START_TIMEOUT_S):
            self.stop()
            raise ImageError(f"the registry's link did not start; see {self.run_dir}/link.log")

    def stop(self) -> None:
        running = [process for process in (self.link, self.process) if process is not None]
        if running:
            stop_trees(running, grace_s=2)
        self.process = self.link = None

    @property
    def served_log(self) -> Path:
        return self.run_dir / "served.log"

    def bytes_served(self, *paths: str, since: float = 0.0,
                     until: float = float("inf")) -> int:
        """Body bytes sent for any of `paths` (blobs' or manifests' paths under the root) in
        responses logged from `since` to `until` (wall-clock seconds); one read of the log.
        nginx logs a response when it ends."""
        return sum(row.size for row in served_rows(self.served_log)
                   if row.path in paths and since <= row.at <= until)


@dataclass(frozen=True)
class ServedRow:
    """One line of the served log: when the response ended, and what it sent."""

    at: float
    method: str
    path: str
    status: int
    size: int


def served_rows(served_log: Path) -> list[ServedRow]:
    rows = []
    for line in served_log.read_text().splitlines():
        stamp, method, uri, status, sent = line.split()
        rows.append(ServedRow(float(stamp), method, uri, int(status), int(sent)))
    return rows


def push(manifest_path: Path, registry_root: Path) -> ImageManifest:
    """Put a built image (its manifest, and the blob beside it) into the registry's tree."""
    manifest = ImageManifest.read(manifest_path)
    blob = manifest_path.parent / manifest.blob_file
    if not blob.is_file():
        raise ImageError(f"image {manifest.name}: {blob} is missing; build it again with "
                         f"`harness image build {manifest.name}`")
    target = registry_root / blob_name(manifest.digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file() or target.stat().st_size != manifest.size:
        target.unlink(missing_ok=True)
        try:
            os.link(blob, target)  # a push within one machine: no copy needed
        except OSError:
            partial = target.with_suffix(".partial")
            shutil.copyfile(blob, partial)
            partial.replace(target)
    manifest.write(registry_root / manifest_name(manifest.name))
    return manifest


def _delay(latency_ms: float) -> str:
    """nginx's directives for a location that waits `latency_ms` (whole ms: echo_sleep takes
    at most three decimals) before it serves the file."""
    if round(latency_ms) < 1:
        return "echo_exec @file;"
    return f"echo_sleep {round(latency_ms) / 1000:.3f}; echo_exec @file;"


def manifest_name(stack: str) -> str:
    return f"manifests/{stack}.json"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0
