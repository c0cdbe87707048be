"""Which model is loaded, said wherever a person looks: GET /v1/models, the CLI and the page.

The service here runs the shipped defaults (the embedded demo CLIP and detector, no
CLIPQ_CLIP_MODEL or CLIPQ_DETECTOR_MODEL), as `make run` does. The page runs in Debian's
chromium; screenshots go to ``artifacts/web/models-*.png``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from clipcore.lab.world import COLOURS, SHAPES
from clipq.cli import main
from clipq.store.jobs import WORKER_HEARTBEAT_SECONDS
from tests.e2e.browser import checked_page, launch_chromium
from tests.e2e.conftest import ROOT, Service, env_on, private_redis, running_service
from tests.e2e.test_web import snap, submitted_job
from tests.support import png_bytes

EXAMPLES = json.loads((ROOT / "api" / "static" / "examples" / "examples.json").read_text())
DEMO_WARNING = (
    "Demo model: it knows only 6 colours × 5 shapes "
    f"({', '.join(COLOURS)} × {', '.join(SHAPES)}); photographs will get meaningless answers."
)
PHOTO_SETTING = "CLIPQ_CLIP_MODEL=openai/clip-vit-base-patch32"


def shipped_defaults(base_env: dict[str, str]) -> dict[str, str]:
    unset = ("CLIPQ_CLIP_MODEL", "CLIPQ_DETECTOR_MODEL")
    return {key: value for key, value in base_env.items() if key not in unset}


@pytest.fixture(scope="module")
def embedded(base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("models")
    with private_redis(folder / "redis") as server:
        env = env_on(shipped_defaults(base_env), server, CLIPQ_BATCH_SIZE="32")
        with running_service(env, folder / "logs") as service:
            yield service


# --- the API and the CLI ------------------------------------------------------------------


def test_the_demo_model_says_what_it_is_and_knows(embedded: Service) -> None:
    response = embedded.http.get("/v1/models")
    assert response.status_code == 200, response.text
    listing = response.json()
    assert listing["workers"] == 1
    [model] = listing["models"]
    assert model["id"] == "embedded"
    assert model["model"] == "embedded:clip-tiny"  # what its results carry
    assert model["kind"] == "embedded-demo"
    assert (model["input_size"], model["embedding_dim"]) == (96, 128)
    assert model["knows"]["colours"] == list(COLOURS)
    assert model["knows"]["shapes"] == list(SHAPES)
    assert PHOTO_SETTING in model["advice"] and "CLIPQ_DETECTOR_MODEL" in model["advice"]
    assert model["detector"]["id"] == "embedded"
    assert model["detector"]["kind"] == "embedded-demo"
    assert model["workers"] == 1


def test_the_command_line_says_it_too(embedded: Service, capsys) -> None:
    assert main(["models", "--server", embedded.base_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("embedded (embedded-demo) · 1 worker\n")
    assert "input 96 px" in out and "6 colours × 5 shapes" in out
    assert f"advice: For photographs set {PHOTO_SETTING}" in out
    assert main(["models", "--server", embedded.base_url, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == embedded.http.get("/v1/models").json()


def test_no_worker_is_a_503_problem(base_env, tmp_path: Path) -> None:
    with (
        private_redis(tmp_path / "redis") as server,
        running_service(env_on(base_env, server), tmp_path / "logs", workers=0) as service,
    ):
        response = service.http.get("/v1/models")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert "no worker is running" in response.json()["detail"]


def test_a_lazy_worker_names_its_model_after_its_first_job(base_env, tmp_path: Path) -> None:
    """With CLIPQ_PRELOAD_MODEL=false a worker is alive before it has a model to describe."""
    env_lazy = {"CLIPQ_PRELOAD_MODEL": "false"}
    with (
        private_redis(tmp_path / "redis") as server,
        running_service(env_on(base_env, server, **env_lazy), tmp_path / "logs") as service,
    ):
        before = service.http.get("/v1/models").json()
        assert (before["models"], before["workers"]) == ([], 1)
        files = [("images", ("a.png", png_bytes((200, 10, 10)), "image/png"))]
        files += [("labels", (None, "a")), ("labels", (None, "b"))]
        job = service.http.post("/v1/classify", files=files).json()
        assert service.wait_for(job["id"])["status"] == "succeeded"
        deadline = time.monotonic() + 3 * WORKER_HEARTBEAT_SECONDS
        while not (listing := service.http.get("/v1/models").json())["models"]:
            assert time.monotonic() < deadline, "the model was not described after its job"
            time.sleep(0.5)
    assert listing["workers"] == 1
    assert [m["id"] for m in listing["models"]] == [base_env["CLIPQ_CLIP_MODEL"]]


# --- the page ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser, embedded: Service, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The page at ``/``; a failing test leaves a screenshot of what the page showed."""
    with checked_page(browser, embedded.base_url, request) as page:
        yield page


def test_the_page_says_it_is_the_demo_model_before_any_result(page: Page) -> None:
    banner = page.locator("#model-banner")
    expect(banner).to_have_attribute("data-kind", "demo")
    expect(banner.locator(".model-headline")).to_have_text(DEMO_WARNING)
    expect(banner.locator(".model-advice")).to_contain_text(f"For photographs set {PHOTO_SETTING}")
    expect(banner.locator("[data-fact=input] dd")).to_have_text("96 × 96 px")
    expect(banner.locator("[data-fact=detector] dd")).to_have_text("embedded (embedded demo)")
    expect(banner.locator("button.example")).to_have_text([e["name"] for e in EXAMPLES["examples"]])
    # Before anything was sent, and above every tool.
    assert page.locator(".result-card").count() == 0
    tabs = page.locator("nav.tabs").bounding_box()
    box = banner.bounding_box()
    assert box and tabs and box["y"] + box["height"] <= tabs["y"]
    snap(page, "models-demo-banner")


@pytest.mark.parametrize("example", EXAMPLES["examples"], ids=lambda e: e["file"])
def test_try_an_example_gives_its_right_label(page: Page, embedded: Service, example) -> None:
    button = page.locator(f"button.example[data-example='{example['file']}']")
    job_id = submitted_job(page, "/v1/classify", button.click)
    expect(page.get_by_role("tab", name="Classify")).to_have_attribute("aria-selected", "true")
    card = page.locator(".classify-card")
    expect(card).to_have_count(1)
    expect(card.locator(".top-label")).to_have_text(example["expected"])
    expect(page.locator("#classify-labels")).to_have_value(", ".join(example["labels"]))
    result = embedded.wait_for(job_id)["result"]
    assert result["model"] == "embedded:clip-tiny"
    [image] = result["images"]
    assert image["filename"] == example["file"]
    assert image["predictions"][0]["label"] == example["expected"]
    assert image["predictions"][0]["probability"] > 0.8
    snap(page, f"models-example-{example['file'].removesuffix('.png')}")


def test_a_service_with_keys_names_its_model_once_it_has_one(page: Page) -> None:
    # This service has no keys; the first answer is what a keyed clipq says without one.
    problem = {"type": "/problems/unauthorized", "title": "Unauthorized", "status": 401}
    sent: list[str | None] = []

    def models(route: Route) -> None:
        sent.append(route.request.headers.get("authorization"))
        if sent[-1] is None:
            route.fulfill(
                status=401, content_type="application/problem+json", body=json.dumps(problem)
            )
        else:
            route.continue_()

    page.route("**/v1/models", models)
    page.reload()
    banner = page.locator("#model-banner")
    expect(banner).to_contain_text("needs an API key before it says which model it runs")
    expect(page.locator("#api-key-input")).not_to_be_focused()  # the page does not grab focus
    snap(page, "models-needs-key")
    page.locator("#api-key").click()
    page.locator("#api-key-input").fill("secret-key")
    page.get_by_role("button", name="Use key").click()
    expect(banner.locator(".model-headline")).to_have_text(DEMO_WARNING)
    assert sent[-1] == "Bearer secret-key"


def photograph_file(name: str) -> dict:
    import io

    from clipcore.lab.photos import photograph

    buffer = io.BytesIO()
    photograph(name).save(buffer, format="JPEG", quality=90)
    return {"name": f"{name}.jpg", "mimeType": "image/jpeg", "buffer": buffer.getvalue()}


def test_a_photograph_is_said_to_be_out_of_the_models_domain(page: Page) -> None:
    example = ROOT / "api" / "static" / "examples" / "red-circle.png"
    shape = {"name": example.name, "mimeType": "image/png", "buffer": example.read_bytes()}
    page.get_by_role("tab", name="Classify").click()
    page.set_input_files("#classify-files", [photograph_file("coffee"), shape])
    page.locator("#classify-labels").fill("dog, red circle")
    page.get_by_role("button", name="Classify 2 images").click()
    cards = page.locator(".classify-card")
    expect(cards).to_have_count(2)
    expect(cards.nth(0).locator(".badge.out-of-domain")).to_have_text("out of domain")
    expect(cards.nth(1).locator(".badge.out-of-domain")).to_have_count(0)
    expect(page.locator("#classify-results .out-of-domain-notice")).to_contain_text(
        "1 of 2 images look like nothing the loaded model knows"
    )
    snap(page, "models-photo-classify")

    page.get_by_role("tab", name="Scenes").click()
    page.set_input_files("#scenes-files", [photograph_file("brick"), shape])
    page.get_by_role("button", name="Analyse 2 images").click()
    scene_cards = page.locator(".scene-card")
    expect(scene_cards).to_have_count(2)
    expect(scene_cards.nth(0).locator(".badge.out-of-domain")).to_have_text("out of domain")
    expect(page.locator("#scenes-results .out-of-domain-notice")).to_be_visible()
    snap(page, "models-photo-scenes")
