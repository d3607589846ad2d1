"""What watching costs the watched: the requests gotop makes of a real target, counted
in its own request log (pprofonly -log), with gotop run in a private network namespace
where no other gotop on the machine asks the target anything.

Polls read the memory (memstats and counts cost the target nothing), goroutine groups
come as text (debug=1: no profile builder, no gzip writer) with the runtime frames it
hides learnt from a protobuf profile (asked again only for frames not seen before),
and `gotop check` takes heap profiles only while the live heap rises (bench/footprint.py
measures what each costs)."""

from __future__ import annotations

import json
from collections import Counter

from netns import gotop_in, requests_in

from gotop.engine.target import RELEARN_RUNTIME_EVERY

PROTOBUF = "GET /debug/pprof/goroutine"
TEXT = "GET /debug/pprof/goroutine?debug=1"
HEAP = "GET /debug/pprof/heap"
VARS = "GET /debug/vars"  # discovery asks it once, to tell whether expvar is there
WATCHED = 16  # seconds
# The protobuf once; again when the text hides a runtime frame not seen before (at most every
# RELEARN_RUNTIME_EVERY seconds), or when the first answer failed to come in time on a loaded
# machine (a loaded suite run saw 2; five loaded runs of the record alone, 1 each).
MAX_PROTOBUFS = 1 + int(WATCHED // RELEARN_RUNTIME_EVERY)


def test_check_asks_for_the_goroutine_protobuf_rarely_and_finds_the_waits_in_the_text(go_target, private_netns,
                                                                                       tmp_path):
    log = tmp_path / "requests.log"
    t = go_target("pprofonly", args=["-log", str(log), "-workload", "leak-all", "-n", "50"], wrapper=private_netns)
    result = gotop_in(private_netns, "check", str(t.pid), "--for", f"{WATCHED}s", "--json")
    assert result.returncode == 1, result.stderr  # leaks
    asked = Counter(requests_in(log))
    assert 1 <= asked[PROTOBUF] <= MAX_PROTOBUFS and asked[TEXT] >= 6, asked
    assert asked[HEAP] == 1, asked  # the baseline: goroutines leak, the live heap does not rise by a MiB
    assert asked[VARS] <= 1, asked  # memstats from the memory, not expvar every second
    report = json.loads(result.stdout)
    waits = {f["where"].split(" ")[0].rsplit(".", 1)[1]: f["evidence"][0]["text"] for f in report["findings"]}
    # The waits are in runtime frames the text form hides: learnt from the one protobuf profile.
    assert "blocked in chan send" in waits["leakySendResult"], waits
    assert "blocked in chan receive" in waits["leakyAwaitReply"], waits
    assert "blocked in select" in waits["leakySelectForever"], waits


def test_the_tuis_polls_ask_the_target_for_goroutine_text_on_one_connection(go_target, private_netns, tmp_path):
    """`gotop record` polls as the TUI does (memstats and counts every second, groups every
    5 s): the memory answers the first, the text goroutine profile the second, over one
    kept-alive connection besides discovery's."""
    log = tmp_path / "requests.log"
    t = go_target("pprofonly", args=["-log", str(log), "-workload", "park", "-n", "20"], wrapper=private_netns)
    result = gotop_in(private_netns, "record", str(t.pid), "--for", f"{WATCHED}s", "-o", str(tmp_path / "r.gotop"),
                      "--heap-every", "1h")
    assert result.returncode == 0, result.stderr
    lines = requests_in(log)
    asked = Counter(lines)
    assert 1 <= asked[PROTOBUF] <= MAX_PROTOBUFS and asked[TEXT] >= 2, asked
    assert asked[VARS] <= 1, asked
    polls = lines[lines.index(PROTOBUF):]  # after discovery's probes and the first poll's connection
    assert "connect" not in polls, lines
