"""Who the web app's limits count: a client by its network, not by its address.

The limits themselves are counted in the database, so that they hold across every process and
restart (``mailer.limits``). A client is counted by its network: an IPv4 /24 or an IPv6
/64 (what one customer of a provider usually holds), so that hopping between a network's addresses
does not reset a count.
"""

from __future__ import annotations

import ipaddress


def network_of(host: str) -> str:
    """The network a client address is counted by: ``203.0.113.0/24`` for IPv4 (and IPv4-mapped
    IPv6), ``2001:db8:1:2::/64`` for IPv6; anything that is not an address as itself (cut to 64)."""
    try:
        address = ipaddress.ip_address(host.strip())
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
