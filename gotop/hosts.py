"""Host names and addresses as gotop reads them: literally, without asking DNS."""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCALHOST: tuple[Address, ...] = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))


def named_addresses(host: str) -> tuple[Address, ...]:
    """The addresses `host` stands for without a DNS lookup: "localhost" (and
    any "*.localhost", RFC 6761) is 127.0.0.1 and ::1; a literal address is
    itself ("[::1]" unbracketed, a "%zone" dropped, an IPv4-mapped IPv6 address
    as IPv4); any other name, none."""
    host = host.strip().strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return LOCALHOST
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return ()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    return (address,)
