"""Completion webhooks, the Standard Webhooks way, without server-side request forgery.

A job may name a ``callback_url``; when it ends, the final Job is POSTed there
with ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
(HMAC-SHA256 over ``id.timestamp.body`` with ``CLIPQ_WEBHOOK_SECRET``). URLs
that resolve to loopback, private, link-local or otherwise non-public addresses
— directly or through an IPv4 address embedded in an IPv6 one — are refused,
when the job is submitted and again at each delivery (DNS can change), unless
``CLIPQ_WEBHOOK_ALLOW`` names the host or its network.

Callback URLs carry the receivers' secrets (tokens in paths and queries), so
nothing here logs or raises one in full: :func:`redact` is the form for logs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
from anyio import to_thread
from standardwebhooks.webhooks import Webhook

from clipcore.errors import InvalidInput

MAX_URL_LENGTH = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# httpx logs every request's full URL at INFO; clipq logs the redacted form itself.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# IPv6 ranges that carry an IPv4 address, which is where the packets end up.
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # ::a.b.c.d (deprecated, RFC 4291)
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (RFC 2765)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix (RFC 6052)
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215)
# A local NAT64 may use any RFC 6052 prefix length inside 64:ff9b:1::/48, and which one
# is known only to its operator, so every reading that fits the address counts: the last
# 32 bits (a /96 prefix) always, and a /48, /56 or /64 prefix's IPv4 bytes when the "u"
# octet (byte 8) and that layout's suffix are zero, as RFC 6052 has them. (An address of
# a /48 or /56 layout thus reads 0.0.0.0 as a /96 one and is refused.)
_NAT64_LAYOUTS = (
    (((6, 8), (9, 11)), 11),
    (((7, 8), (9, 12)), 12),
    (((9, 13),), 13),
)


def _local_nat64_readings(packed: bytes) -> list[ipaddress.IPv4Address]:
    readings = [packed[12:]]
    for parts, suffix in _NAT64_LAYOUTS:
        if packed[8] == 0 and not any(packed[suffix:]):
            readings.append(b"".join(packed[start:end] for start, end in parts))
    return [ipaddress.IPv4Address(reading) for reading in readings]


class UnsafeCallback(InvalidInput):
    slug = "unsafe-callback-url"
    title = "Callback URL not allowed"


class DeliveryFailed(Exception):
    """One delivery attempt failed; the message names the URL only in its redacted form."""


def redact(url: str) -> str:
    """``scheme://host[:port]/#hash``: enough to tell receivers apart, no path or query."""
    parts = urlsplit(url)
    rest = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    digest = hashlib.sha256(rest.encode()).hexdigest()[:8]
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/#{digest}"


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for (mapped, 6to4, NAT64, ...); [] if none."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)  # the Teredo server and the client behind it
    if address in _COMPATIBLE or address in _TRANSLATED or address in _NAT64:
        return [ipaddress.IPv4Address(address.packed[12:])]
    if address in _NAT64_LOCAL:
        return _local_nat64_readings(address.packed)
    return []


def is_public(address: IPAddress) -> bool:
    """Whether clipq may call ``address``: by its embedded IPv4 when it has one.

    Python calls ``::127.0.0.1`` or ``2002:7f00:1::`` global, yet traffic to them
    reaches 127.0.0.1; and it calls every IPv4-mapped address private, though
    ``::ffff:93.184.216.34`` is 93.184.216.34.
    """
    embedded = embedded_ipv4(address)
    if embedded:
        return all(ipv4.is_global for ipv4 in embedded)
    return address.is_global


def _allowed(host: str, addresses: list[IPAddress], allow: str) -> bool:
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


def reachable(host: str, allow: str) -> bool:
    """Whether clipq may connect to ``host``: it resolves, and only to public addresses
    unless ``allow`` (hosts or CIDRs, comma-separated) names it or its network."""
    addresses = resolve(host)
    return bool(addresses) and (
        _allowed(host, addresses, allow) or all(is_public(a) for a in addresses)
    )


def resolve(host: str) -> list[IPAddress]:
    """The host's addresses (blocking: a DNS lookup); [] when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):  # UnicodeError: a label IDNA cannot encode
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _refuse(message: str) -> UnsafeCallback:
    return UnsafeCallback.for_field("callback_url", message)


async def check_callback_url(url: str, allow: str, *, resolve_within: float | None = None) -> str:
    """The URL if clipq may call it; :class:`UnsafeCallback` (422, naming why) otherwise.

    The DNS lookup runs in a worker thread, so that the event loop goes on serving
    others meanwhile; past ``resolve_within`` seconds it is abandoned and the URL
    refused. Without a bound it runs under the caller's own deadline.
    """
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refuse("must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise _refuse("must not carry credentials")
    try:
        parts.port  # noqa: B018 - parsed on access; httpx would refuse it only at delivery
    except ValueError:
        raise _refuse("has an invalid port") from None
    host = parts.hostname
    with anyio.move_on_after(resolve_within) as lookup:
        addresses = await to_thread.run_sync(resolve, host, abandon_on_cancel=True)
    if lookup.cancelled_caught:
        raise _refuse(f"the host {host!r} did not resolve within {resolve_within:g} s")
    if not addresses:
        raise _refuse(f"the host {host!r} does not resolve")
    if _allowed(host, addresses, allow):
        return url
    private = [str(a) for a in addresses if not is_public(a)]
    if private:
        raise _refuse(
            f"{host} resolves to a non-public address ({', '.join(private)}); "
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


async def deliver(
    url: str, message_id: str, body: str, *, secret: str, allow: str, deadline: float
) -> int:
    """POST one signed delivery within ``deadline`` seconds; returns the (2xx) status.

    The deadline covers the whole attempt — the address check, connecting, sending,
    the status line and the headers — since a receiver trickling its answer a byte
    at a time never trips a per-read timeout. The body of the answer is never read.
    Raises :class:`DeliveryFailed` (worth retrying) or :class:`UnsafeCallback` (not).
    """
    where = redact(url)
    try:
        with anyio.fail_after(deadline):
            await check_callback_url(url, allow)
            async with (
                # A redirect could lead anywhere, past the address check.
                httpx.AsyncClient(timeout=deadline, follow_redirects=False) as client,
                client.stream(
                    "POST", url, content=body, headers=signed_headers(secret, message_id, body)
                ) as response,
            ):
                status = response.status_code
    except TimeoutError:
        raise DeliveryFailed(f"{where}: no answer within {deadline:g} s") from None
    except httpx.HTTPError as exc:
        # Only the class: httpx messages may quote the URL.
        raise DeliveryFailed(f"{where}: {exc.__class__.__name__}") from None
    except httpx.InvalidURL:  # no retry makes it valid
        raise _refuse("is not a URL httpx can send to") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"{where}: answered {status}")
    return status
