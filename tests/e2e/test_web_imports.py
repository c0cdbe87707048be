"""An import by reference started from the page, in a real browser: each shard's progress and
outcome as the API gives them, a reference the workers may not read refused at its line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import checked_page, launch_chromium
from tests.e2e.conftest import Service
from tests.e2e.test_collections import create
from tests.e2e.test_source_imports import data, progress, sources  # noqa: F401 (fixtures)
from tests.e2e.test_web import snap, submitted_job


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser, sources: Service, request: pytest.FixtureRequest) -> Iterator[Page]:  # noqa: F811
    with checked_page(browser, sources.base_url, request) as page:
        yield page


def open_imports(page: Page, collection: dict) -> None:
    page.get_by_role("tab", name="Collections & search").click()
    expect(page.locator("#collections-manage")).not_to_have_attribute("aria-busy", "true")
    page.locator("#collection-select").select_option(collection["id"])
    page.get_by_text("Import by reference", exact=True).click()


def test_an_import_shows_each_shard(page: Page, sources: Service, data: Path) -> None:  # noqa: F811
    collection = create(sources, "imported in the page")
    open_imports(page, collection)
    page.get_by_label("Labels from").select_option("caption")
    page.locator("#source-refs").fill(str(data / "shards" / "{00000..00002}.tar"))
    job_id = submitted_job(
        page,
        f"/v1/collections/{collection['id']}/imports",
        lambda: page.locator("#source-run").click(),
    )
    final = sources.wait_for(job_id, timeout=120)
    result = final["result"]
    assert (result["shards"], result["added"], result["failed"]) == (3, 17, 1)
    status = page.locator("#source-status")
    expect(status).to_have_text(
        "Imported 17 images from 3 shards; 1 failed. The collection holds 17 images."
    )
    shards = progress(sources, collection["id"], job_id)["shards"]
    rows = page.locator("#source-shard-table tbody tr")
    expect(rows).to_have_count(3)
    for row, shard in zip(rows.all(), shards, strict=True):
        cells = row.locator("td")
        expect(cells.nth(1)).to_have_text(shard["name"])
        expect(cells.nth(2)).to_contain_text("succeeded")
        expect(cells.nth(3)).to_have_text(str(shard["done"]))
        r = shard["result"]
        expect(cells.nth(4)).to_have_text(
            f"{r['added']} added · {r['duplicates']} already in · {r['failed']} failed"
        )
    bad = shards[2]["result"]["errors"][0]
    assert bad["sample"] in bad["error"]["detail"]  # the file's own problem names it: once
    expect(rows.nth(2).locator("td").nth(5)).to_have_text(bad["error"]["detail"])
    expect(page.locator("#collection-info")).to_contain_text("17 images")
    snap(page, "import-by-reference")

    # The same import again: every shard was imported before, and the page says so.
    page.locator("#source-run").click()
    expect(status).to_contain_text("Imported 0 images from 3 shards (3 imported before)")
    expect(rows.first.locator("td").nth(4)).to_have_text("imported before: skipped")


def test_a_reference_it_may_not_read_is_refused_at_its_line(
    page: Page,
    sources: Service,  # noqa: F811
    data: Path,  # noqa: F811
) -> None:
    collection = create(sources, "refused in the page")
    open_imports(page, collection)
    page.locator("#source-refs").fill(f"{data / 'shards' / '00000.tar'}\n\n/etc/passwd.tar")
    with page.expect_response(lambda r: r.url.endswith("/imports")) as answer:
        page.locator("#source-run").click()
    problem = answer.value.json()
    assert answer.value.status == 422 and problem["errors"][0]["field"] == "source.shards[1]"
    expect(page.locator("#source-refs-error")).to_have_text(
        f"Line 3: {problem['errors'][0]['message']}."
    )
    expect(page.locator("#source-refs")).to_have_attribute("aria-invalid", "true")
    assert sources.http.get(f"/v1/collections/{collection['id']}").json()["image_count"] == 0
