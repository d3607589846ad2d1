"""`gotop info PID`: build info and process facts (`go version -m` and `gops PID` together)."""

from __future__ import annotations

import json
import time
from argparse import Namespace
from collections.abc import Callable
from datetime import datetime

from gotop.discovery.processes import GoProcess, Scanner
from gotop.sources.procfs import ProcessFacts, process_facts
from gotop.textsafe import plain
from gotop.units import fmt_bytes, fmt_elapsed
from gotop.unixconnect import UNIX_PREFIX


def run(args: Namespace) -> int:
    proc = Scanner().inspect(args.pid)
    facts = process_facts(args.pid)
    if args.json:
        print(json.dumps(proc.to_json() | facts.to_json(), indent=2))
    else:
        print(format_info(proc, facts))
    return 0


def format_info(proc: GoProcess, facts: ProcessFacts) -> str:
    build = proc.build
    started = datetime.fromtimestamp(proc.create_time).strftime("%Y-%m-%d %H:%M:%S")
    lines: list[tuple[str, str]] = [
        ("pid", f"{proc.pid} ({plain(proc.name)})"),
        ("parent pid", str(proc.ppid)),
        ("user", plain(proc.username)),
        ("started", f"{started} (elapsed {fmt_elapsed(time.time() - proc.create_time)})"),
        ("cmdline", plain(" ".join(facts.cmdline))),
        ("exe", plain(proc.exe)),
        ("rss", fmt_bytes(facts.rss)),
        ("threads", str(facts.threads)),
        ("open fds", "?" if facts.open_fds is None else str(facts.open_fds)),
        ("listening", ", ".join([*(_describe_socket(proc, s.host, s.port) for s in proc.listening),
                                 *(_describe_unix_socket(proc, s.path) for s in proc.unix_listening)]) or "-"),
        ("gops agent", f"{proc.agent.host}:{proc.agent.port} (port file {plain(proc.agent.port_file)})"
         + ("" if proc.agent.reachable else ", in another network namespace") if proc.agent else "-"),
        ("pprof", plain(proc.pprof or "-")),  # a UNIX socket's path may hold anything
        ("expvar", plain(proc.expvar or "-")),
        ("metrics", plain(proc.metrics or "-")),
        ("memory", "readable (the runtime is read from outside)" if proc.memory else plain(proc.memory_note)),
        ("go", build.go_version or "unknown (no build info)"),
        ("path", plain(build.path) or "-"),
    ]
    if build.main:
        lines.append(("mod", plain(" ".join(filter(None, (build.main.path, build.main.version, build.main.sum))))))
    lines += [("dep" if i == 0 else "", plain(_module_text(d))) for i, d in enumerate(build.deps)]
    lines += [("build" if i == 0 else "", plain(f"{k}={v}")) for i, (k, v) in enumerate(build.settings)]
    lines += [("note" if i == 0 else "", plain(n)) for i, n in enumerate(proc.notes)]
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in lines)


def _describe_socket(proc: GoProcess, host: str, port: int) -> str:
    roles = ["gops agent"] if proc.agent and proc.agent.port == port else []
    roles += _roles(proc, lambda url: f":{port}/" in url)
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{addr} ({', '.join(roles)})" if roles else addr


def _describe_unix_socket(proc: GoProcess, path: str) -> str:
    roles = _roles(proc, lambda url: url == UNIX_PREFIX + path)
    return plain(path) + (f" ({', '.join(roles)})" if roles else "")


def _roles(proc: GoProcess, served_here: Callable[[str], bool]) -> list[str]:
    """Which of pprof, expvar and /metrics a socket serves, told by their URLs."""
    return [role for role, url in (("pprof", proc.pprof), ("expvar", proc.expvar), ("metrics", proc.metrics))
            if url and served_here(url)]


def _module_text(mod) -> str:
    text = " ".join(filter(None, (mod.path, mod.version, mod.sum)))
    if mod.replace:
        text += " => " + " ".join(filter(None, (mod.replace.path, mod.replace.version, mod.replace.sum)))
    return text
