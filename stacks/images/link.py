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

Requests flow to the registry unshaped (they are a few hundred bytes); the registry's added
latency stays with the registry (`stacks.images.registry`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

CHUNK = 64 * 1024  # a chunk is sent whole: 1.3 ms of link time at 400 Mbit/s
# How far behind its schedule the link may fall (a timer firing late, a chunk arriving late)
# and still catch up: the most it ever sends ahead of the bandwidth is this long's worth
# (500 KB at 400 Mbit/s). Without it each late wake-up is lost: 27 MB/s of a nominal 50.
SLACK_S = 0.010


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               bytes_per_s: float | None) -> None:
    """Copy until end of stream; with a bandwidth, each chunk leaves when the link has carried
    the ones before it."""
    loop = asyncio.get_running_loop()
    free_at = 0.0
    try:
        while chunk := await reader.read(CHUNK):
            if bytes_per_s:
                free_at = max(free_at, loop.time() - SLACK_S) + len(chunk) / bytes_per_s
                if (wait := free_at - loop.time()) > 0:
                    await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                upstream: int, bytes_per_s: float) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(pump(client_reader, server_writer, None),
                             pump(server_reader, client_writer, bytes_per_s))
    finally:
        for writer in (server_writer, client_writer):
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def serve(port: int, upstream: int, bytes_per_s: float) -> None:
    server = await asyncio.start_server(
        lambda reader, writer: relay(reader, writer, upstream, bytes_per_s), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="where nodes connect")
    parser.add_argument("--upstream", type=int, required=True, help="the registry's port")
    parser.add_argument("--bandwidth-mbps", type=float, required=True)
    args = parser.parse_args()
    if args.bandwidth_mbps <= 0:
        parser.error(f"--bandwidth-mbps must be above 0, got {args.bandwidth_mbps}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.upstream, args.bandwidth_mbps * 1e6 / 8))


if __name__ == "__main__":
    main()
