"""What the ingest endpoint never stores: the client IP in full (only the network is kept:
IPv4 /24, IPv6 /48), and personal data in page URLs' query strings (``scrub_url``)."""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote_plus


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


# Query-string (and fragment) keys that carry personal data: stripped from page URLs and
# referrers before anything is stored (INGEST_PII_QUERY_KEYS replaces the list; "none" keeps all).
DEFAULT_PII_QUERY_KEYS = (
    "email",
    "e-mail",
    "e_mail",
    "mail",
    "phone",
    "tel",
    "mobile",
    "token",
    "access_token",
    "id_token",
    "auth",
    "password",
    "passwd",
    "pwd",
    "name",
    "first_name",
    "firstname",
    "last_name",
    "lastname",
    "surname",
    "address",
)
URL_FIELDS = ("url", "referrer", "path")


def _strip_pairs(text: str, keys: frozenset[str]) -> str:
    """``a=1&email=x&b=2`` -> ``a=1&b=2``: pairs whose key (decoded, case-insensitive) is in keys
    leave; the others stay byte for byte."""
    kept = []
    for pair in text.split("&"):
        name = unquote_plus(pair.split("=", 1)[0]).strip().lower()
        if name not in keys:
            kept.append(pair)
    return "&".join(kept)


def scrub_url(url: str, keys: frozenset[str]) -> str:
    """The URL without the query-string and fragment parameters named in ``keys``; the rest is
    left exactly as sent. A URL without such parameters comes back unchanged."""
    if not keys or not isinstance(url, str) or ("?" not in url and "#" not in url):
        return url
    head, hash_mark, fragment = url.partition("#")
    base, question_mark, query = head.partition("?")
    if question_mark:
        query = _strip_pairs(query, keys)
        head = base + ("?" + query if query else "")
    if hash_mark and "=" in fragment:
        fragment = _strip_pairs(fragment, keys)
        return head + ("#" + fragment if fragment else "")
    return head + (hash_mark + fragment if hash_mark else "")


def scrub_event_urls(event, keys: frozenset[str]):
    """A copy of the event with its page URL, path and referrer scrubbed (``scrub_url``); any
    other value (a rejected event need not be an object) comes back as it is."""
    if not keys or not isinstance(event, dict) or not isinstance(event.get("page"), dict):
        return event
    page = dict(event["page"])
    for field in URL_FIELDS:
        if isinstance(page.get(field), str):
            page[field] = scrub_url(page[field], keys)
    return {**event, "page": page}
