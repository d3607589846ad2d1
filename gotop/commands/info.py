"""`gotop info PID`: build info and process facts (`go version -m` and `gops PID` together)."""

from __future__ import annotations

import json
import time
from argparse import Namespace
from datetime import datetime

from gotop.discovery.processes import GoProcess, Scanner
from gotop.sources.procfs import ProcessFacts, process_facts
from gotop.textsafe import plain
from gotop.units import fmt_bytes, fmt_elapsed


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
        ("listening", ", ".join(_describe_socket(proc, s.host, s.port) for s in proc.listening) or "-"),
        ("gops agent", f"{proc.agent.host}:{proc.agent.port} (port file {plain(proc.agent.port_file)})"
         + ("" if proc.agent.reachable else ", in another network namespace") if proc.agent else "-"),
        ("pprof", proc.pprof or "-"),
        ("expvar", proc.expvar or "-"),
        ("metrics", proc.metrics or "-"),
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
    roles = []
    if proc.agent and proc.agent.port == port:
        roles.append("gops agent")
    for role, url in (("pprof", proc.pprof), ("expvar", proc.expvar), ("metrics", proc.metrics)):
        if url and f":{port}/" in url:
            roles.append(role)
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{addr} ({', '.join(roles)})" if roles else addr


def _module_text(mod) -> str:
    text = " ".join(filter(None, (mod.path, mod.version, mod.sum)))
    if mod.replace:
        text += " => " + " ".join(filter(None, (mod.replace.path, mod.replace.version, mod.replace.sum)))
    return text
