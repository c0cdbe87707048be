"""Callback URL checks and one delivery attempt, without Redis or Celery.

Addresses are literals, so no test here needs DNS; deliveries go to a loopback
receiver that answers one byte at a time.
"""

from __future__ import annotations

import time

import anyio
import pytest
from standardwebhooks.webhooks import Webhook

import clipq.webhooks
from clipq.webhooks import DeliveryFailed, UnsafeCallback, check_callback_url, deliver, redact
from tests.receivers import SlowReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


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

    monkeypatch.setattr(clipq.webhooks, "resolve", slow_resolve)
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


def test_redact_keeps_scheme_and_host_and_hides_path_and_query() -> None:
    url = "https://hooks.example.com:8443/t/s3cret-path?token=tok-123"
    shown = redact(url)
    assert shown.startswith("https://hooks.example.com:8443/#")
    assert "s3cret" not in shown and "tok-123" not in shown
    assert redact(url) == shown != redact(url.replace("123", "124"))


def attempt(url: str, deadline: float) -> int:
    return anyio.run(
        lambda: deliver(
            url, "msg_1", '{"id": "1"}', secret=SECRET, allow="127.0.0.1", deadline=deadline
        )
    )


def test_an_attempt_ends_at_its_deadline_however_slowly_the_receiver_answers() -> None:
    receiver = SlowReceiver(interval=0.5)  # each read gets a byte well within the deadline
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as failed:
        attempt(receiver.url + "/s3cret?token=tok-123", deadline=1.5)
    assert time.monotonic() - started < 2.0
    assert "no answer within 1.5 s" in str(failed.value)
    assert "s3cret" not in str(failed.value) and "tok-123" not in str(failed.value)
    (seen,) = receiver.wait_ended(1, timeout=5)
    assert seen.seconds < 1.6
    receiver.close()


def test_the_answer_body_is_never_waited_for_and_the_delivery_is_signed() -> None:
    receiver = SlowReceiver(
        interval=0.5, head=b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", trickle=b"x" * 100
    )
    started = time.monotonic()
    assert attempt(receiver.url, deadline=3) == 200
    assert time.monotonic() - started < 1.5
    (seen,) = receiver.wait_ended(1, timeout=5)
    assert Webhook(SECRET).verify(seen.request, seen.headers) == {"id": "1"}
    receiver.close()


def test_a_refusing_receiver_fails_the_attempt_without_naming_the_url() -> None:
    receiver = SlowReceiver(head=b"HTTP/1.1 500 Internal Server Error\r\n\r\n", trickle=b"")
    with pytest.raises(DeliveryFailed, match="answered 500") as failed:
        attempt(receiver.url + "/s3cret?token=tok-123", deadline=3)
    assert str(failed.value).startswith("http://127.0.0.1:")
    assert "s3cret" not in str(failed.value) and "tok-123" not in str(failed.value)
    receiver.close()
