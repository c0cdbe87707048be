"""Debian's chromium driven by Playwright for Python: never a downloaded browser.

``scripts/install-browser.sh`` installs ``/usr/bin/chromium``; Playwright only drives it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def missing_browser_message() -> str:
    return f"{CHROMIUM} is missing: run scripts/install-browser.sh (installs Debian's chromium)"


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Headless Debian chromium with the flags a container without a GPU or a sandbox needs."""
    if not CHROMIUM.exists():
        raise RuntimeError(missing_browser_message())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(
    browser: Browser, base_url: str, viewport: dict[str, int] = DESKTOP
) -> Iterator[Page]:
    """A fresh context (its own storage, downloads allowed) and page at ``base_url``.

    Console errors and uncaught exceptions of the page are collected in ``page.errors``
    (a list of strings) so a test can assert the page ran cleanly.
    """
    context = browser.new_context(
        base_url=base_url,
        viewport=viewport,
        accept_downloads=True,
        device_scale_factor=1,
        is_mobile=viewport["width"] < 600,
        has_touch=viewport["width"] < 600,
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if _unexpected(msg) else None,
    )
    page.errors = errors  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()


@contextmanager
def checked_page(browser: Browser, base_url: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The page at ``/``, for a test fixture: a failing test leaves a screenshot of what the
    page showed in ``ARTIFACTS``, and the page must have run without console errors."""
    failed_before = request.session.testsfailed
    with open_page(browser, base_url) as page:
        page.goto("/")
        yield page
        if request.session.testsfailed > failed_before:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=ARTIFACTS / f"failed-{request.node.name}.png", full_page=True)
        assert page.errors == [], page.errors  # type: ignore[attr-defined]


def _unexpected(message: ConsoleMessage) -> bool:
    """A console error other than the browser's note on an HTTP error status.

    The page shows 4xx problems to the person on purpose (a bad file is a 422); chromium
    also logs each as "Failed to load resource", which is not a fault of the page.
    """
    return message.type == "error" and not message.text.startswith("Failed to load resource")
