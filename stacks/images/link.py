"""The network between a node and the registry: a TCP relay on loopback that passes the
registry's bytes to each connection at a fixed bandwidth, as a link does.

    python -m stacks.images.link --port 8001 --upstream 8000 --bandwidth-mbps 400

A link neither bursts nor banks: each chunk takes its size ÷ the bandwidth, from when the link
is next free, and time the connection sat idle buys nothing (beyond `SLACK_S`). nginx's own
limits do not do that, measured:

- `limit_rate` limits each response to rate × (seconds since it began + 1): every response's
  first second's worth goes out at loopback speed. At 400 Mbit/s (50 MB/s), a lazy start's
  4 MiB range requests all fit in it: 140 blocks arrived in 3.3 s instead of 11.7 s, while
  the eager start's one 859 MB response was held to the rate after its first 50 MB.
- the stream module's `proxy_download_rate` counts from the connection's start, so every idle
  second is credit: a lazy fetcher, idle while the engine computes, would spend it at loopback
  speed.

`tc` (a token bucket on the loopback device) would shape in the kernel, but it needs
CAP_NET_ADMIN and changes the loopback of every process on the machine.

The bytes move from socket to socket through a pipe with `splice`, never through Python: a
registry lies across a network, and what it costs in CPU must not come off the node's cores,
where a lazy start's engine is importing while its blocks arrive. Relaying one 865 MB blob at
50 MB/s cost this process 3.2 s of CPU with asyncio streams (64 KiB reads), 2.5 s with
256 KiB reads, and 0.56 s with splice through a 256 KiB pipe.

Requests flow to the registry unshaped (they are a few hundred bytes); the registry's added
latency stays with the registry (`stacks.images.registry`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import socket
import threading
import time

CHUNK = 256 * 1024  # a chunk is sent whole: 5.2 ms of link time at 400 Mbit/s
# How far behind its schedule the link may fall (a late wake-up, a chunk arriving late) and
# still catch up: the most it ever sends ahead of the bandwidth is this long's worth (500 KB
# at 400 Mbit/s). Without it each late wake-up is lost: 27 MB/s of a nominal 50.
SLACK_S = 0.010


def pump(source: socket.socket, sink: socket.socket, bytes_per_s: float | None) -> None:
    """Move bytes until end of stream; with a bandwidth, each chunk leaves when the link has
    carried the ones before it. Then the sink's sending side is shut, as the source's was."""
    pipe_out, pipe_in = os.pipe()
    free_at = 0.0
    try:
        fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, CHUNK)  # 64 KiB by default: 4 calls a chunk
        while count := os.splice(source.fileno(), pipe_in, CHUNK):
            if bytes_per_s:
                now = time.monotonic()
                free_at = max(free_at, now - SLACK_S) + count / bytes_per_s
                if (wait := free_at - now) > 0:
                    time.sleep(wait)
            while count:
                count -= os.splice(pipe_out, sink.fileno(), count)
        sink.shutdown(socket.SHUT_WR)
    except OSError:  # either side reset or gone: both ends learn it at once
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)  # wakes the other direction's splice too
    finally:
        os.close(pipe_out)
        os.close(pipe_in)


def relay(client: socket.socket, upstream: int, bytes_per_s: float) -> None:
    """One node connection: requests to the registry as they come, responses at the link's
    pace."""
    with client:
        try:
            server = socket.create_connection(("127.0.0.1", upstream))
        except OSError:
            return
        with server:
            requests = threading.Thread(target=pump, args=(client, server, None), daemon=True)
            requests.start()
            pump(server, client, bytes_per_s)
            requests.join()


def serve(port: int, upstream: int, bytes_per_s: float) -> None:
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # out of descriptors for a moment: the link stays up
                time.sleep(0.05)
                continue
            threading.Thread(target=relay, args=(client, upstream, bytes_per_s),
                             daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="where nodes connect")
    parser.add_argument("--upstream", type=int, required=True, help="the registry's port")
    parser.add_argument("--bandwidth-mbps", type=float, required=True)
    args = parser.parse_args()
    if args.bandwidth_mbps <= 0:
        parser.error(f"--bandwidth-mbps must be above 0, got {args.bandwidth_mbps}")
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.port, args.upstream, args.bandwidth_mbps * 1e6 / 8)


if __name__ == "__main__":
    main()
