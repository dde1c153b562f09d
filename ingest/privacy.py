"""The client IP policy: never stored in full. Only the network is kept (IPv4 /24, IPv6 /48)."""

from __future__ import annotations

import ipaddress


def truncate_ip(address: str | None) -> str | None:
    """``203.0.113.77`` -> ``203.0.113.0/24``; ``2001:db8:85a3::1`` -> ``2001:db8:85a3::/48``.
    None for a missing or malformed address."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def client_ip(source_ip: str | None, forwarded_for: str | None) -> str | None:
    """The client's address: API Gateway's sourceIp, else the first X-Forwarded-For entry."""
    if source_ip:
        return source_ip
    if forwarded_for:
        return forwarded_for.split(",", 1)[0].strip() or None
    return None
