"""Real profiles made hostile: the sample heap profile naming files it should not."""

from __future__ import annotations

import gzip
from pathlib import Path

from gotop.model import profile_pb

SAMPLE_HEAP = Path(__file__).resolve().parent / "samples" / "pprof-heap.pb.gz"
SAMPLE_MAIN_FILE = b"gotoplab/leaky/main.go"  # main.main and main.retain (a -trimpath build)


def profile_naming(tmp_path: Path, source: str) -> Path:
    """The real sample heap profile with its main package's file renamed to `source`."""
    view = profile_pb.ProfileView.FromString(gzip.decompress(SAMPLE_HEAP.read_bytes()))
    view.string_table[list(view.string_table).index(SAMPLE_MAIN_FILE)] = source.encode()
    path = tmp_path / "named.pb.gz"
    path.write_bytes(gzip.compress(view.SerializeToString()))
    return path
