"""Completion webhooks, the Standard Webhooks way, without server-side request forgery.

A job may name a ``callback_url``; when it ends, the final Job is POSTed there
with ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
(HMAC-SHA256 over ``id.timestamp.body`` with ``CLIPQ_WEBHOOK_SECRET``). URLs
that resolve to loopback, private, link-local or otherwise non-public addresses
are refused — when the job is submitted and again at each delivery (DNS can
change) — unless ``CLIPQ_WEBHOOK_ALLOW`` names the host or its network.
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from clipcore.errors import InvalidInput

MAX_URL_LENGTH = 2000


class UnsafeCallback(InvalidInput):
    slug = "unsafe-callback-url"
    title = "Callback URL not allowed"


def _allowed(
    host: str, addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address], allow: str
) -> bool:
    entries = [entry.strip() for entry in allow.split(",") if entry.strip()]
    if host in entries:
        return True
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue  # a host name entry
    return bool(addresses) and all(any(a in n for n in networks) for a in addresses)


def resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_callback_url(url: str, allow: str) -> str:
    """The URL if clipq may call it; :class:`UnsafeCallback` (422, naming why) otherwise."""

    def refuse(message: str) -> UnsafeCallback:
        return UnsafeCallback.for_field("callback_url", message)  # type: ignore[return-value]

    if len(url) > MAX_URL_LENGTH:
        raise refuse(f"longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refuse("must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise refuse("must not carry credentials")
    addresses = resolve(parts.hostname)
    if not addresses:
        raise refuse(f"the host {parts.hostname!r} does not resolve")
    if _allowed(parts.hostname, addresses, allow):
        return url
    private = [str(a) for a in addresses if not a.is_global]
    if private:
        raise refuse(
            f"{parts.hostname} resolves to a non-public address ({', '.join(private)}); "
            "allow it with CLIPQ_WEBHOOK_ALLOW"
        )
    return url


def signed_headers(secret: str, message_id: str, body: str) -> dict[str, str]:
    timestamp = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
    }


def deliver(
    url: str, message_id: str, body: str, *, secret: str, allow: str, timeout: float
) -> int:
    """POST one signed delivery; returns the status. Raises on transport errors and non-2xx."""
    check_callback_url(url, allow)
    response = httpx.post(
        url,
        content=body,
        headers=signed_headers(secret, message_id, body),
        timeout=timeout,
        follow_redirects=False,  # a redirect could lead anywhere, past the address check
    )
    response.raise_for_status()
    return response.status_code
