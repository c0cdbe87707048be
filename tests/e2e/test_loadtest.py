"""bench/loadtest.py against the real service: a small load, nothing lost, no errors."""

from __future__ import annotations

import pytest

from bench import loadtest
from tests.e2e.conftest import Service


def test_a_small_load_has_no_errors_and_loses_no_job(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--url", service.base_url, "--requests", "200", "--concurrency", "16"]
    code = loadtest.main([*argv, "--duration", "120", "--drain-timeout", "120"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "requests sent   200" in printed and "lost jobs       0" in printed, printed


@pytest.mark.parametrize(
    "url", ["http://example.com", "http://10.0.0.1:8080", "http://127.0.0.1.nip.io", "ftp://[::1]"]
)
def test_it_refuses_anything_but_loopback(url: str) -> None:
    assert loadtest.main(["--url", url, "--requests", "1"]) == 2


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost", "http://[::1]:80"])
def test_loopback_urls_are_accepted(url: str) -> None:
    assert loadtest.is_loopback(url)
