"""The API documentation renders in a real browser with no network but the service's own.

Every request to another origin is refused (as on an offline host) and recorded: the pages
must not make any, and must still show every operation.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.e2e.browser import ARTIFACTS, launch_chromium, open_page
from tests.e2e.conftest import Service


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def offline(browser: Browser, service: Service) -> Iterator[tuple[Page, list[str]]]:
    """A page that can reach the service and nothing else; the refused URLs in a list."""
    refused: list[str] = []

    def only_the_service(route: Route) -> None:
        if route.request.url.startswith(service.base_url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    with open_page(browser, service.base_url) as page:
        page.route("**/*", only_the_service)
        yield page, refused


def operation_count(service: Service) -> int:
    paths = service.http.get("/openapi.json").json()["paths"]
    return sum(len(methods) for methods in paths.values())


def test_swagger_ui_renders_offline(offline: tuple[Page, list[str]], service: Service) -> None:
    page, refused = offline
    page.goto("/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() == operation_count(service)
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()  # the API key
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "docs-swagger.png")
    assert refused == []
    assert page.errors == []  # type: ignore[attr-defined]
