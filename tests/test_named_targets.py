"""Targets named by address (`host:port`, `http://host:port`): their local pid is
the owner of that listening socket in gotop's own network namespace, found
without a word to any other process."""

from __future__ import annotations

import json
import sys

from netns import gotop_in, requests_in
from terminal import Terminal

from gotop.engine.target import Target


def test_snapshot_of_an_address_asks_no_other_process(go_target, private_netns, tmp_path):
    named = go_target("agentpprof", wrapper=private_netns)
    log = tmp_path / "bystander.log"
    go_target("pprofonly", args=["-log", str(log)], wrapper=private_netns)  # a bystander counting connections

    for text in (named.ready["agent"], f"http://{named.http_addr}"):
        result = gotop_in(private_netns, "snapshot", text, "--json")
        assert result.returncode == 0, result.stderr
        reading = json.loads(result.stdout)
        assert reading["source"]["process"] == "procfs"  # the pid was found: its OS figures are there
        assert reading["process"]["threads"] > 1
    assert requests_in(log) == []  # not one connection to the bystander


def test_the_tui_on_an_address_asks_no_other_process(go_target, private_netns, tmp_path):
    named = go_target("agentpprof", wrapper=private_netns)
    log = tmp_path / "bystander.log"
    go_target("pprofonly", args=["-log", str(log)], wrapper=private_netns)
    tui = Terminal([*private_netns, sys.executable, "-m", "gotop", named.ready["agent"]])
    try:
        tui.expect("GOMAXPROCS")  # the process screen of the named target, polled
        tui.expect(f"pid {named.pid}")
        tui.send("q")
        assert tui.wait() == 0
    finally:
        tui.kill()
    assert requests_in(log) == []


async def test_the_pid_is_the_listeners_owner_in_gotops_namespace(go_target, private_netns):
    # The same port in two namespaces: a process in another one (a container)
    # listens on it first; the one gotop reaches is the process in its own.
    for _ in range(5):  # the port the other namespace got may be taken in ours (a shared machine): another one
        elsewhere = go_target("pprofonly", wrapper=private_netns)
        try:
            here = go_target("pprofonly", args=["-http", elsewhere.http_addr])
            break
        except RuntimeError as e:
            if "address already in use" not in str(e):
                raise
            elsewhere.kill()
    else:
        raise AssertionError("every port the other namespace got was taken in ours")
    async with Target.open(f"http://{here.http_addr}") as target:
        assert target.pid == here.pid
    port = elsewhere.http_addr.rsplit(":", 1)[1]
    async with Target.open(f"localhost:{port}") as target:
        assert target.pid == here.pid
    here.kill()
    async with Target.open(f"http://{elsewhere.http_addr}") as target:
        assert target.pid is None  # nothing listens there in gotop's namespace


async def test_a_wildcard_listener_is_found_from_loopback(go_target):
    target = go_target("pprofonly", args=["-http", "[::]:0"])
    port = target.http_addr.rsplit(":", 1)[1]
    for host in ("127.0.0.1", "[::1]", "localhost"):
        async with Target.open(f"http://{host}:{port}") as named:
            assert named.pid == target.pid, host
