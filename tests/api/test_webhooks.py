"""Callback URL checks, without Redis or Celery.

Addresses are literals, so no test here needs DNS.
"""

from __future__ import annotations

import time

import anyio
import pytest

import api.webhooks
from api.webhooks import UnsafeCallback, check_callback_url


def check(url: str, allow: str = "", **options: float) -> str:
    return anyio.run(lambda: check_callback_url(url, allow, **options))


# Each form with a non-public and a public IPv4 inside (93.184.216.34, example.com's).
FORMS = {
    "IPv4-compatible": ("::127.0.0.1", "::93.184.216.34"),
    "IPv4-mapped": ("::ffff:169.254.169.254", "::ffff:93.184.216.34"),
    "IPv4-translated": ("::ffff:0:7f00:1", "::ffff:0:5db8:d822"),
    "6to4": ("2002:7f00:1::", "2002:5db8:d822::1"),
    "NAT64": ("64:ff9b::a9fe:a9fe", "64:ff9b::5db8:d822"),
    "local-use NAT64": ("64:ff9b:1::a00:1", "64:ff9b:1::5db8:d822"),
    # The client's IPv4 is stored inverted: 10.0.0.1 and 93.184.216.34.
    "Teredo": ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "2001:0:4136:e378:8000:63bf:a247:27dd"),
}


def refusal(url: str) -> UnsafeCallback:
    with pytest.raises(UnsafeCallback) as refused:
        check(url)
    assert refused.value.errors[0].field == "callback_url"
    assert "non-public" in refused.value.detail
    return refused.value


@pytest.mark.parametrize("form", FORMS)
def test_an_embedded_ipv4_decides(form: str) -> None:
    private, public = FORMS[form]
    assert private in refusal(f"http://[{private}]/hook").detail
    assert check(f"https://[{public}]:8443/hook") == f"https://[{public}]:8443/hook"


@pytest.mark.parametrize(
    "address",
    [
        "2001:0:7f00:1:8000:63bf:a247:27dd",  # Teredo: a public client behind server 127.0.0.1
        # Local-use NAT64 with a /48 prefix: 127.0.0.1 in bits 48-87. Its operator may use
        # any prefix length, so every reading counts (and this one reads 0.0.0.0 as a /96).
        "64:ff9b:1:7f00:0:100::",
        "64:ff9b:1:5db8:d8:2200::",
    ],
)
def test_every_ipv4_an_address_may_stand_for_must_be_public(address: str) -> None:
    refusal(f"http://[{address}]/hook")


def test_a_slow_lookup_is_a_422_and_leaves_the_event_loop_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def slow_resolve(host: str) -> list:
        time.sleep(3)  # a resolver that takes its time, as a remote DNS server may
        return []

    monkeypatch.setattr(api.webhooks, "resolve", slow_resolve)
    ticks: list[float] = []

    async def main() -> None:
        async def tick() -> None:
            while True:
                ticks.append(time.monotonic())
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as group:
            group.start_soon(tick)
            try:
                with pytest.raises(UnsafeCallback) as refused:
                    await check_callback_url("https://hooks.example.com/", "", resolve_within=0.5)
            finally:
                group.cancel_scope.cancel()
        assert refused.value.errors[0].field == "callback_url"
        assert "did not resolve within 0.5 s" in refused.value.detail

    started = time.monotonic()
    anyio.run(main)
    assert time.monotonic() - started < 1.5
    assert len(ticks) >= 5  # the loop went on while the lookup ran


def test_a_host_idna_cannot_encode_is_refused_not_a_crash() -> None:
    with pytest.raises(UnsafeCallback, match="does not resolve"):
        check(f"https://{'a' * 64}.example.com/hook")


def test_a_port_out_of_range_is_refused_at_submission() -> None:
    with pytest.raises(UnsafeCallback, match="invalid port"):
        check("https://93.184.216.34:99999/hook")
