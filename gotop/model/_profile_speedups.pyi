# The C extension's functions (gotop/model/_profile_speedups.c says what they do).
from array import array

def decode_samples(
    profile: bytes | bytearray, max_id: int, value_count: int, /
) -> tuple[list[str], list[str], list[bytes], list[bytes]] | None: ...
def node_costs(
    stacks: tuple[str, ...], weights: array, first_node: array, nodes: array, node_count: int, /
) -> tuple[list[int], list[int]] | None: ...
