"""`gotop export [--listen HOST:PORT] [--interval D]`: every Go process on this host, for Prometheus.

The TUI's engine, headless: discovery, a poller per process and the leak
detectors (gotop.engine.fleet). prometheus_client serves the engine's latest
state on /metrics (gotop.commands.fleetmetrics), in the text format or in
OpenMetrics as the scraper asks; a scrape never polls. It listens on loopback
unless told otherwise, and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from argparse import Namespace

from prometheus_client import CollectorRegistry, start_http_server

from gotop.commands.common import FailureLines
from gotop.commands.fleetmetrics import FleetCollector
from gotop.engine.fleet import Fleet
from gotop.engine.poller import STEADY_EVERY, Tiers
from gotop.errors import GotopError

DEFAULT_LISTEN = "127.0.0.1:9149"


def run(args: Namespace) -> int:
    host, port = parse_listen(args.listen)
    asyncio.run(_serve(host, port, Tiers(args.interval, args.slow_every, steady_every=STEADY_EVERY)))
    return 0


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[IPv6]:PORT'; port 0 takes any free port."""
    host, sep, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not (sep and host and port.isdigit() and port.isascii() and int(port) < 65536):
        raise GotopError(f"--listen {text!r}: give HOST:PORT, e.g. {DEFAULT_LISTEN} or [::1]:9149")
    return host, int(port)


async def _serve(host: str, port: int, tiers: Tiers) -> None:
    loop = asyncio.get_running_loop()
    failure_lines = FailureLines("export")
    fleet = Fleet(failure_lines.target, tiers)
    registry = CollectorRegistry()
    registry.register(FleetCollector(fleet, loop))
    try:
        server, _ = start_http_server(port, host, registry)
    except OSError as e:  # the address is taken, not ours, or not an address
        raise GotopError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
    where = f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
    print(f"gotop export: serving http://{where}/metrics", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with fleet.running():
        try:
            while not stop.is_set():
                failure_lines.show("discovery", fleet.discovery_error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
        finally:  # stop serving before the fleet closes
            await asyncio.to_thread(server.shutdown)
            server.server_close()
