"""Shared fixtures: real Go targets, started per test and always killed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from gotargets import TOOLCHAINS, RunningTarget, start_target

SAMPLES = Path(__file__).resolve().parent / "samples"


@pytest.fixture
def go_target(tmp_path_factory) -> Callable[..., RunningTarget]:
    """Start a Go target: `go_target("agentpprof", toolchain="go", args=[...])`.

    Each target gets its own GOPS_CONFIG_DIR; all are killed at teardown.
    """
    started: list[RunningTarget] = []

    def start(name: str, *, toolchain: str = "go", **kwargs) -> RunningTarget:
        if not TOOLCHAINS[toolchain].available():
            pytest.skip(f"Go toolchain {toolchain} is not installed (tests/run installs it)")
        kwargs.setdefault("config_dir", tmp_path_factory.mktemp("gops"))
        target = start_target(name, toolchain=toolchain, **kwargs)
        started.append(target)
        return target

    yield start
    for target in started:
        target.kill()
