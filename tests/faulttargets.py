"""Fault-injecting stand-ins for the engine's parts: a real target and a real
scanner that fail, while told to, with an error of a kind no transport or
probe raises (a stand-in for a bug, or an answer nobody foresaw). Real Go
targets cannot fail that way on demand; everything else is theirs.
"""

from __future__ import annotations

from gotop.discovery.processes import Scanner, ScanResult
from gotop.engine.target import Sample, Target


class BreakableTarget(Target):
    """A real target whose samples raise `fault` while it is set."""

    fault: Exception | None = None
    samples = 0  # asked for
    faults = 0  # raised

    async def sample(self) -> Sample:
        self.samples += 1
        if self.fault is not None:
            self.faults += 1
            raise self.fault
        return await super().sample()


class BreakableScanner(Scanner):
    """A real scanner whose scans raise `fault` while it is set."""

    fault: Exception | None = None

    def scan(self) -> ScanResult:
        if self.fault is not None:
            raise self.fault
        return super().scan()
