"""Discovery's HTTP probes of Go processes' listeners, against real targets:
what they ask, how often, and what one hostile process can cost."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from faultservers import InjectingProxy, service_families, streamed_response
from netns import gotop_in, private_cache, requests_in

from gotop.discovery.probecache import ProbeCache
from gotop.discovery.probes import HttpEndpoints, SocketProbe, probe_socket
from gotop.discovery.sockets import ListenSocket, listening_sockets, proc_listening_table
from gotop.errors import GotopError
from gotop.model.memstats import parse_expvar
from gotop.procstat import read_proc_stat
from gotop.sources.http import NotPprof, PprofClient


def listed(netns, *args: str, env: dict[str, str] | None = None) -> dict[int, dict]:
    result = gotop_in(netns, "list", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return {p["pid"]: p for p in json.loads(result.stdout)["processes"]}


def test_deeply_nested_vars_cost_only_their_process(go_target, private_netns, tmp_path):
    hostile = go_target("pprofonly", args=["-vars", "nested"], wrapper=private_netns)
    good = go_target("pprofonly", wrapper=private_netns)

    procs = listed(private_netns)
    assert procs[hostile.pid]["pprof"] == f"http://{hostile.http_addr}/debug/pprof/"
    assert procs[hostile.pid]["expvar"] is None  # not expvar: nothing to read there
    assert procs[good.pid]["expvar"] == f"http://{good.http_addr}/debug/vars"

    recording = tmp_path / "all.gotop"
    recorded = gotop_in(private_netns, "record", "-o", str(recording), "--for", "3s", "--interval", "0.5")
    assert recorded.returncode == 0, recorded.stderr
    labels = [label for (label,) in sqlite3.connect(recording).execute("SELECT label FROM targets")]
    assert f"pid {good.pid} (pprofonly)" in labels
    assert f"pid {hostile.pid} (pprofonly)" in labels


async def test_deeply_nested_vars_are_refused_by_the_parsers(go_target):
    target = go_target("pprofonly", args=["-vars", "nested"])
    async with PprofClient(target.http_addr) as client:
        body = await client.vars_raw()
        with pytest.raises(NotPprof, match="not expvar: invalid JSON"):
            await client.vars()
    with pytest.raises(GotopError, match="expvar: not JSON"):
        parse_expvar(body)


# -- each socket probed once in its process's life, across gotop runs ---------------------------------

PROBE = ["connect", "GET /debug/pprof/cmdline", "connect", "GET /debug/vars", "connect", "GET /metrics"]  # a probe
UNTIL_VARS_HANG = PROBE[:4]  # /debug/vars never answered: /metrics is asked another time, with it


def cache_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_RUNTIME_DIR"]) / "gotop" / "probes.json"


def test_a_socket_is_probed_once_in_its_process_life(go_target, private_netns, tmp_path):
    env = private_cache(tmp_path)
    log = tmp_path / "requests.log"
    target = go_target("pprofonly", args=["-log", str(log)], wrapper=private_netns)
    first = listed(private_netns, env=env)[target.pid]
    assert first["pprof"] == f"http://{target.http_addr}/debug/pprof/"
    assert first["expvar"] == f"http://{target.http_addr}/debug/vars"
    assert requests_in(log) == PROBE

    second = listed(private_netns, env=env)[target.pid]
    info = gotop_in(private_netns, "info", str(target.pid), env=env)
    assert info.returncode == 0, info.stderr
    assert (second["pprof"], second["expvar"]) == (first["pprof"], first["expvar"])
    assert requests_in(log) == PROBE  # the later runs asked nothing
    assert stat.S_IMODE(cache_file(env).stat().st_mode) == 0o600

    # The same address served again by a restarted process: a new process, probed again.
    target.kill()
    again = go_target("pprofonly", args=["-log", str(log), "-http", target.http_addr], wrapper=private_netns)
    assert listed(private_netns, env=env)[again.pid]["pprof"] == first["pprof"]
    assert requests_in(log) == PROBE * 2


def test_a_server_that_is_not_plain_http_gets_one_request(go_target, private_netns, tmp_path):
    # A TLS listener (as syncthing's): Go's TLS server answers a plain request with a 400
    # and logs a handshake error; a second request would log a second one.
    env = private_cache(tmp_path)
    log = tmp_path / "requests.log"
    target = go_target("pprofonly", args=["-log", str(log), "-tls"], wrapper=private_netns)
    assert listed(private_netns, env=env)[target.pid]["pprof"] is None
    assert listed(private_netns, env=env)[target.pid]["pprof"] is None
    assert requests_in(log) == ["connect", "tls handshake error"]


def test_a_socket_whose_vars_time_out_keeps_its_pprof(go_target, private_netns, tmp_path):
    """cmdline proved pprof; /debug/vars never answered: pprof is used, and the
    socket is asked again by the next run (a timeout is not remembered)."""
    env = private_cache(tmp_path)
    log = tmp_path / "requests.log"
    target = go_target("pprofonly", args=["-log", str(log), "-vars", "hang"], wrapper=private_netns)
    first = listed(private_netns, env=env)[target.pid]
    assert (first["pprof"], first["expvar"]) == (f"http://{target.http_addr}/debug/pprof/", None)
    assert requests_in(log) == UNTIL_VARS_HANG
    assert listed(private_netns, env=env)[target.pid]["pprof"] == first["pprof"]
    assert requests_in(log) == UNTIL_VARS_HANG * 2


SCANS_TWICE = """
import json, sys
from gotop.discovery import probecache
from gotop.discovery.processes import Scanner
probecache.RETRY_AFTER = float(sys.argv[2])
scanner, pid = Scanner(), int(sys.argv[1])
print(json.dumps([next(p.pprof for p in scanner.scan().processes if p.pid == pid) for _ in range(2)]))
"""


@pytest.mark.parametrize(("retry_after", "asked"), [(0.0, 2), (60.0, 1)])
def test_a_socket_that_timed_out_is_asked_again_after_a_while(go_target, private_netns, tmp_path,
                                                              retry_after, asked):
    """As the TUI rescans: a finding that does not last (its /debug/vars never answers) is not
    written down, and is asked again once RETRY_AFTER has passed, not at every rescan; the
    pprof its cmdline proved is used meanwhile."""
    env = private_cache(tmp_path)
    log = tmp_path / "requests.log"
    target = go_target("pprofonly", args=["-log", str(log), "-vars", "hang"], wrapper=private_netns)
    scans = subprocess.run([*private_netns, sys.executable, "-c", SCANS_TWICE, str(target.pid), str(retry_after)],
                           capture_output=True, text=True, timeout=90, env={**os.environ, **env})
    assert scans.returncode == 0, scans.stderr
    assert json.loads(scans.stdout) == [f"http://{target.http_addr}/debug/pprof/"] * 2
    assert requests_in(log) == UNTIL_VARS_HANG * asked


def remembered_as_serving_nothing(env: dict[str, str], target) -> None:
    """A trusted cache file that says the target's socket serves neither pprof nor expvar."""
    (sock,) = listening_sockets(target.pid, proc_listening_table(target.pid))
    cache = ProbeCache(str(cache_file(env).parent))
    cache.put((target.pid, read_proc_stat(target.pid).start_ticks), sock, SocketProbe(lasting=True))
    cache.save()
    assert cache_file(env).exists()


def rewrite(env: dict[str, str], change) -> None:
    doc = json.loads(cache_file(env).read_text())
    change(doc)
    cache_file(env).write_text(json.dumps(doc))


def entry_of(doc: dict, pid: int) -> list:
    """The cache file's one entry for the process `pid`."""
    (entry,) = [entry for entry in doc["sockets"] if entry[0] == pid]
    return entry


def test_a_trusted_cache_file_is_believed(go_target, private_netns, tmp_path):
    # The control for the next test: the file it spoils would otherwise be used.
    env = private_cache(tmp_path)
    log = tmp_path / "requests.log"
    target = go_target("pprofonly", args=["-log", str(log)], wrapper=private_netns)
    remembered_as_serving_nothing(env, target)
    assert listed(private_netns, env=env)[target.pid]["pprof"] is None
    assert requests_in(log) == []


def spoil_symlink(path: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)


@pytest.mark.parametrize("spoil", [
    lambda path, tmp: path.write_bytes(b"\x00\xffnot json"),
    lambda path, tmp: path.write_bytes(b"[" * 100_000),
    lambda path, tmp: path.write_text('{"format": "gotop-probes", "version": 1, "boot": 7, "sockets": {}}'),
    lambda path, tmp: path.write_bytes(b" " * (2 << 20)),
    lambda path, tmp: path.chmod(0o640),
    lambda path, tmp: os.chown(path, 65534, 65534),
    spoil_symlink,
], ids=["garbage", "nested", "wrong-shape", "huge", "group-readable", "foreign-owner", "symlink"])
def test_a_spoiled_cache_file_is_ignored_and_replaced(go_target, private_netns, tmp_path, spoil):
    env = private_cache(tmp_path)
    target = go_target("pprofonly", wrapper=private_netns)
    remembered_as_serving_nothing(env, target)
    spoil(cache_file(env), tmp_path)
    elsewhere_before = (tmp_path / "elsewhere.json").read_bytes() if cache_file(env).is_symlink() else None

    result = gotop_in(private_netns, "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    entry = {p["pid"]: p for p in json.loads(result.stdout)["processes"]}[target.pid]
    assert entry["pprof"] == f"http://{target.http_addr}/debug/pprof/"  # probed again
    path = cache_file(env)
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_uid == os.geteuid()
    assert json.loads(path.read_text())["format"] == "gotop-probes"
    if elsewhere_before is not None:
        assert (tmp_path / "elsewhere.json").read_bytes() == elsewhere_before  # not written through the link


@pytest.mark.parametrize("change", [
    lambda doc: doc.update(boot="another boot"),
    lambda doc: doc["sockets"][0].__setitem__(5, "http://192.0.2.1:80/debug/pprof/"),
    lambda doc: doc["sockets"][0].__setitem__(1, doc["sockets"][0][1] + 1),  # another process with the pid
], ids=["another-boot", "foreign-url", "earlier-process"])
def test_entries_that_do_not_check_out_are_not_used(go_target, private_netns, tmp_path, change):
    env = private_cache(tmp_path)
    log = tmp_path / "requests.log"
    target = go_target("pprofonly", args=["-log", str(log)], wrapper=private_netns)
    remembered_as_serving_nothing(env, target)
    rewrite(env, change)
    assert listed(private_netns, env=env)[target.pid]["pprof"] == f"http://{target.http_addr}/debug/pprof/"
    assert requests_in(log) == PROBE


def test_a_finding_remembered_before_metrics_were_asked_stands_and_asks_metrics_alone(go_target, private_netns,
                                                                                     tmp_path):
    """A cache entry of seven fields (a gotop from before /metrics): what it says is used;
    a socket it proved HTTP is asked /metrics alone, once; one it says serves nothing is probed again."""
    env = private_cache(tmp_path)
    log = tmp_path / "requests.log"
    target = go_target("pprofonly", args=["-log", str(log)], wrapper=private_netns)
    first = listed(private_netns, env=env)[target.pid]
    assert requests_in(log) == PROBE

    # (the file holds the UNIX sockets of other processes too, which any namespace reaches)
    rewrite(env, lambda doc: entry_of(doc, target.pid).pop())  # as an older gotop wrote it
    assert listed(private_netns, env=env)[target.pid] == first
    assert requests_in(log) == [*PROBE, "connect", "GET /metrics"]
    assert len(entry_of(json.loads(cache_file(env).read_text()), target.pid)) == 8  # written down whole
    assert listed(private_netns, env=env)[target.pid] == first
    assert requests_in(log) == [*PROBE, "connect", "GET /metrics"]

    rewrite(env, lambda doc: entry_of(doc, target.pid).__setitem__(slice(5, None), [None, None]))  # serving nothing
    assert listed(private_netns, env=env)[target.pid] == first
    assert requests_in(log)[-len(PROBE):] == PROBE  # its socket asked whole: it may not even be HTTP


# -- /metrics: the probe reads only what tells client_golang's Go collector ----------------------------

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def caddy_metrics() -> bytes:
    return (Path(__file__).resolve().parent / "samples" / "metrics-caddy.txt").read_bytes()


@pytest.mark.parametrize(("body", "found"), [
    (lambda: caddy_metrics(), True),
    # The Go collector first, then 11 MB the probe never reads: read whole, it would be over the cap.
    (lambda: caddy_metrics() + service_families(200_000), True),
    (lambda: service_families(40_000) + caddy_metrics(), False),  # go_* after 1 MiB of the service's own
    (lambda: service_families(10), False),  # Prometheus text, no Go collector
    (lambda: b"<html><body>metrics</body></html>", False),
    (lambda: b"go_goroutines 3\ngo_goroutines 5\n", False),  # two collectors that disagree
], ids=["whole", "go-first-then-11MB", "go-after-1MiB", "no-go-collector", "html", "conflicting"])
async def test_a_metrics_probe_reads_until_the_go_collector_tells(go_target, body, found):
    """Stand-in: a proxy in front of a real pprof target answers /metrics itself."""
    target = go_target("pprofonly")
    with open(f"/proc/{target.pid}/cmdline", "rb") as f:
        argv0 = f.read().split(b"\0", 1)[0]
    answer = streamed_response(body(), content_type=METRICS_TYPE)
    async with InjectingProxy(target.http_addr, {"/metrics": answer}) as proxy:
        probe = await asyncio.to_thread(probe_socket, ListenSocket("127.0.0.1", proxy.port, 0), argv0)
    assert probe.lasting and proxy.injected == 1
    assert probe.endpoints == HttpEndpoints(f"{proxy.url}/debug/pprof/", f"{proxy.url}/debug/vars",
                                            f"{proxy.url}/metrics" if found else None)
