"""Steady load on the real services of tests/services.py: a loop of real requests, paced.

  prometheus  instant queries over its own series, its label names, its /metrics
  etcd        puts to a hundred keys (values of 100 bytes) and range reads over them:
              etcd keeps every revision until it is compacted (nothing compacts here),
              so its live heap grows a little with each write, as under any steady
              write load
  caddy       a site it serves as its admin API is told to (a static page, gzipped),
              and its /metrics

`ServiceLoad` runs one loop on a thread of its own, as one client on one
keep-alive connection, for as long as its block lasts. Used by
tests/test_leak_services.py and bench/leak_accuracy.py.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from collections.abc import Callable
from types import TracebackType

import httpx
from services import RunningService, _free_ports

RATE = 100.0  # requests a second
TIMEOUT = 10.0  # one request's (a safety net)
PAGE = "hello from a busy caddy\n" * 400  # about 10 KB, gzipped in each answer

Request = Callable[[httpx.Client], httpx.Response]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def prometheus_requests(service: RunningService) -> list[Request]:
    web = service.api_url
    queries = ("sum by (handler) (rate(prometheus_http_requests_total[1m]))", "up", "vector(time())",
               "count({__name__=~\"go_.*\"})")
    return [
        *(lambda c, q=q: c.get(f"{web}/api/v1/query", params={"query": q}) for q in queries),
        lambda c: c.get(f"{web}/api/v1/labels"),
        lambda c: c.get(service.metrics_url),
    ]


def etcd_requests(service: RunningService) -> list[Request]:
    client, keys, value = service.api_url, itertools.count(), _b64("v" * 100)
    return [
        lambda c: c.post(f"{client}/v3/kv/put", json={"key": _b64(f"key-{next(keys) % 100}"), "value": value}),
        lambda c: c.post(f"{client}/v3/kv/range", json={"key": _b64("key-"), "range_end": _b64("key.")}),
    ]


def caddy_requests(service: RunningService) -> list[Request]:
    """Caddy is told to serve a site on a free port (through its admin API, keeping the admin
    endpoint where it is), and asked for it."""
    admin = service.api_url
    assert admin is not None
    (port,) = _free_ports(1)
    config = {
        "admin": {"listen": admin.removeprefix("http://")},
        "apps": {"http": {"servers": {"load": {"listen": [f"127.0.0.1:{port}"], "routes": [{"handle": [
            {"handler": "encode", "encodings": {"gzip": {}}},
            {"handler": "static_response", "body": PAGE, "headers": {"Content-Type": ["text/plain"]}},
        ]}]}}}},
    }
    httpx.post(f"{admin}/load", json=config, timeout=TIMEOUT).raise_for_status()
    site, gzip = f"http://127.0.0.1:{port}", {"Accept-Encoding": "gzip"}
    return [
        lambda c: c.get(f"{site}/", headers=gzip),
        lambda c: c.get(f"{site}/page?n=1", headers=gzip),
        lambda c: c.get(service.metrics_url),
    ]


REQUESTS: dict[str, Callable[[RunningService], list[Request]]] = {
    "prometheus": prometheus_requests, "etcd": etcd_requests, "caddy": caddy_requests,
}


class ServiceLoad:
    """A loop of real requests to one service, RATE a second, while its block runs."""

    def __init__(self, service: RunningService, rate: float = RATE) -> None:
        self.service = service
        self.rate = rate
        self.requests = 0  # answered with a 2xx
        self.failures: list[str] = []  # the others, as "status url" or the error
        self._requests = REQUESTS[service.name](service)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load on {service.name}", daemon=True)

    def __enter__(self) -> ServiceLoad:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT * 2)

    def _run(self) -> None:
        started = time.monotonic()
        with httpx.Client(timeout=TIMEOUT) as client:
            for sent, request in enumerate(itertools.cycle(self._requests)):
                # Paced to the clock: the requests a busy machine delayed are sent at once.
                if self._stop.wait(max(0.0, started + sent / self.rate - time.monotonic())):
                    return
                try:
                    response = request(client)
                except httpx.HTTPError as e:
                    self.failures.append(f"{type(e).__name__}: {e}")
                    continue
                if response.is_success:
                    self.requests += 1
                else:
                    self.failures.append(f"{response.status_code} {response.url}")
