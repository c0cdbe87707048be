"""API keys, tenancy, idempotency and completion webhooks, against real processes."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import Service, env_on, private_redis, running_service
from tests.e2e.openapi_walk import operations, request_body
from tests.support import png_bytes

KEY_A, KEY_B = "key-a-0123456789abcdef", "key-b-fedcba9876543210"
METRICS_KEY = "metrics-0123456789"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# What the README promises strangers may read; every other operation needs a key.
OPEN_OPERATIONS = {("GET", "/healthz"), ("GET", "/readyz")}
OPEN_PAGES = ["/", "/docs", "/docs/assets/swagger-ui.css", "/openapi.json", "/static/app.js"]


def files(*labels: str, **fields: str) -> list:
    parts = [("images", ("a.png", png_bytes((200, 10, 10)), "image/png"))]
    parts += [("labels", (None, label)) for label in labels or ("a", "b")]
    return parts + [(key, (None, value)) for key, value in fields.items()]


@pytest.fixture(scope="module")
def secured(base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("secured")
    key_file = folder / "keys.txt"
    key_file.write_text(f"# the second tenant\n{KEY_B}\n")
    with private_redis(folder / "redis") as server:
        env = env_on(
            base_env,
            server,
            CLIPQ_API_KEYS=KEY_A,
            CLIPQ_API_KEY_FILE=str(key_file),
            CLIPQ_WEBHOOK_SECRET=SECRET,
            CLIPQ_WEBHOOK_ALLOW="127.0.0.1",
            CLIPQ_METRICS_KEY=METRICS_KEY,
        )
        with running_service(env, folder / "logs") as service:  # /readyz needs no key
            yield service


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def owned_by_a(secured: Service) -> dict[str, str]:
    """Real ids of tenant A's resources: a job, a plan, a collection and an image in it."""
    headers = auth(KEY_A)
    job = secured.http.post("/v1/classify", files=files(), headers=headers).json()
    pictures = [("images", (f"{i}.png", png_bytes((i, 9, 9)), "image/png")) for i in (1, 2)]
    plan = secured.http.post("/v1/plans", files=pictures, headers=headers).json()
    made = secured.http.post("/v1/collections", json={"name": "a's"}, headers=headers).json()
    ingest = secured.http.post(
        f"/v1/collections/{made['id']}/images",
        files=[("images", ("a.png", png_bytes((9, 99, 199)), "image/png"))],
        headers=headers,
    ).json()
    done = wait(secured, ingest["id"], KEY_A)
    assert done["status"] == "succeeded", done
    image_id = done["result"]["images"][0]["image_id"]
    assert wait(secured, plan["id"], KEY_A)["status"] == "succeeded"
    assert wait(secured, job["id"], KEY_A)["status"] == "succeeded"
    # the job named: an import by reference, which routes under a collection know too (its
    # URL is refused by the worker, a documentation address; the job is real all the same)
    source = {"kind": "urls", "urls": ["http://192.0.2.1/a.jpg"]}
    imported = secured.http.post(
        f"/v1/collections/{made['id']}/imports", json={"source": source}, headers=headers
    ).json()
    assert wait(secured, imported["id"], KEY_A)["status"] == "failed"
    return {
        "job_id": imported["id"],
        "plan_id": plan["id"],
        "collection_id": made["id"],
        "image_id": image_id,
    }


def wait(service: Service, job_id: str, key: str) -> dict:
    for _ in range(60):
        job = service.http.get(f"/v1/jobs/{job_id}", params={"wait": 2}, headers=auth(key)).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} did not finish")


def test_every_operation_needs_a_key(secured: Service, owned_by_a: dict[str, str]) -> None:
    document = secured.http.get("/openapi.json").json()
    walked = operations(document)
    assert len(walked) >= 20  # the whole API, not an empty document
    for operation in walked:
        body = request_body(document, operation)
        for headers in ({}, auth("wrong-key"), {"Authorization": "Basic abc"}):
            response = secured.http.request(
                operation.method, operation.url(owned_by_a), headers=headers, **body
            )
            where = (operation.method, operation.template, headers)
            assert response.headers["x-content-type-options"] == "nosniff", where
            if (operation.method, operation.template) in OPEN_OPERATIONS:
                assert response.status_code != 401, where
                continue
            assert response.status_code == 401, where
            assert response.headers["content-type"] == "application/problem+json", where
            assert response.headers["www-authenticate"].startswith("Bearer"), where
    # Outside the document: the page and the docs are open, any unknown path is not.
    for path in OPEN_PAGES:
        assert secured.http.get(path).status_code == 200, path
    assert secured.http.get("/v2/anything").status_code == 401


def test_another_tenants_ids_are_unknown_everywhere(
    secured: Service, owned_by_a: dict[str, str]
) -> None:
    document = secured.http.get("/openapi.json").json()
    with_ids = [op for op in operations(document) if op.parameters]
    assert {"job_id", "collection_id", "image_id"} <= {p for op in with_ids for p in op.parameters}
    for operation in with_ids:
        response = secured.http.request(
            operation.method,
            operation.url(owned_by_a),
            headers=auth(KEY_B),
            **request_body(document, operation),
        )
        assert response.status_code == 404, (operation.method, operation.template, response.text)
    # ...and they are real: the owner reads every one of them.
    for operation in with_ids:
        if operation.method == "GET":
            response = secured.http.get(operation.url(owned_by_a), headers=auth(KEY_A))
            assert response.status_code == 200, (operation.template, response.text)


def test_a_stranger_is_refused_before_the_body_is_read(secured: Service) -> None:
    """A 401 at once for a 50 MB upload that never arrives, not a wait for its body."""
    host, port = urlsplit(secured.base_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
        )
        started = time.monotonic()
        reply = connection.recv(4096)
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert time.monotonic() - started < 2
    # Neither the media type nor a bad file is looked at before the key.
    json_body = secured.http.post("/v1/classify", json={"labels": ["a"]})
    bad_file = secured.http.post("/v1/classify", files=[("images", ("x.txt", b"not an image"))])
    assert json_body.status_code == bad_file.status_code == 401


def test_keyed_answers_are_private_to_their_key(
    secured: Service, owned_by_a: dict[str, str]
) -> None:
    listing = secured.http.get("/v1/collections", headers=auth(KEY_A))
    assert listing.headers["cache-control"] == "private, no-store"
    assert "authorization" in listing.headers["vary"].lower()
    page = secured.http.get(
        f"/v1/collections/{owned_by_a['collection_id']}/images", headers=auth(KEY_A)
    ).json()
    thumbnail = secured.http.get(page["images"][0]["thumbnail_url"], headers=auth(KEY_A))
    assert thumbnail.status_code == 200
    assert thumbnail.headers["cache-control"] == "private, max-age=86400"
    assert thumbnail.headers["x-content-type-options"] == "nosniff"
    assert secured.http.get(page["images"][0]["thumbnail_url"]).status_code == 401


def test_metrics_need_the_metrics_key_and_readiness_names_no_host(secured: Service) -> None:
    assert secured.http.get("/metrics").status_code == 401
    assert secured.http.get("/metrics", headers=auth(KEY_A)).status_code == 401
    metrics = secured.http.get("/metrics", headers=auth(METRICS_KEY))
    assert metrics.status_code == 200 and "clipq_workers_alive 1.0" in metrics.text
    ready = secured.http.get("/readyz")
    assert ready.json() == {"status": "ready", "redis": True, "workers": 1}
    assert socket.gethostname() not in ready.text


def images_embedded(service: Service) -> float:
    text = service.http.get("/metrics", headers=auth(METRICS_KEY)).text
    return float(re.search(r"^clipq_images_embedded_total (\S+)$", text, re.MULTILINE).group(1))


def test_the_embedding_cache_tells_no_tenant_of_another(secured: Service) -> None:
    """A's cache hit is A's alone: B's upload of the same bytes goes through the model."""
    picture = [("images", ("probe.png", png_bytes((1, 2, 3), (40, 40)), "image/png"))]
    picture += [("labels", (None, "a")), ("labels", (None, "b"))]
    counts = [images_embedded(secured)]
    for key in (KEY_A, KEY_A, KEY_B):
        job = secured.http.post("/v1/classify", files=picture, headers=auth(key)).json()
        assert wait(secured, job["id"], key)["status"] == "succeeded"
        counts.append(images_embedded(secured))
    steps = [after - before for before, after in itertools.pairwise(counts)]
    assert steps == [1, 0, 1]  # A's first (a miss), A's again (its hit), B's (a miss)


def test_keys_are_never_logged(secured: Service) -> None:
    secured.http.get("/v1/collections", headers=auth(KEY_A))
    secured.http.get("/v1/collections", headers=auth("a-wrong-key-xyz"))
    logs = "".join(p.read_text() for p in secured.logs.glob("*.log"))
    assert KEY_A not in logs and KEY_B not in logs and "a-wrong-key-xyz" not in logs


def test_jobs_and_collections_belong_to_their_key(secured: Service) -> None:
    job = secured.http.post("/v1/classify", files=files(), headers=auth(KEY_A)).json()
    assert secured.http.get(f"/v1/jobs/{job['id']}", headers=auth(KEY_A)).status_code == 200
    assert secured.http.get(f"/v1/jobs/{job['id']}", headers=auth(KEY_B)).status_code == 404
    assert secured.http.delete(f"/v1/jobs/{job['id']}", headers=auth(KEY_B)).status_code == 404

    made = secured.http.post("/v1/collections", json={"name": "a's own"}, headers=auth(KEY_A))
    path = f"/v1/collections/{made.json()['id']}"
    assert [c["id"] for c in secured.http.get("/v1/collections", headers=auth(KEY_B)).json()] == []
    assert secured.http.get(path, headers=auth(KEY_B)).status_code == 404
    assert (
        secured.http.post(f"{path}/search", json={"query": "x"}, headers=auth(KEY_B)).status_code
        == 404
    )
    assert secured.http.delete(path, headers=auth(KEY_B)).status_code == 404
    assert secured.http.get(path, headers=auth(KEY_A)).status_code == 200
    # Names are unique per key: B may have A's, A may not have it twice.
    named = {"name": "a's own"}
    assert secured.http.post("/v1/collections", json=named, headers=auth(KEY_B)).status_code == 201
    assert secured.http.post("/v1/collections", json=named, headers=auth(KEY_A)).status_code == 409


def test_idempotency_key_returns_the_same_job(secured: Service) -> None:
    headers = auth(KEY_A) | {"Idempotency-Key": "order-42"}
    first = secured.http.post("/v1/classify", files=files("cat", "dog"), headers=headers)
    again = secured.http.post("/v1/classify", files=files("cat", "dog"), headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = secured.http.post("/v1/classify", files=files("cat", "bird"), headers=headers)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    # Keys are per tenant: the other key's same Idempotency-Key is a new job.
    theirs = secured.http.post(
        "/v1/classify",
        files=files("cat", "dog"),
        headers=auth(KEY_B) | {"Idempotency-Key": "order-42"},
    )
    assert theirs.json()["id"] != first.json()["id"]


def test_retry_after_on_202_and_unfinished_jobs(secured: Service) -> None:
    response = secured.http.post("/v1/classify", files=files(), headers=auth(KEY_A))
    assert int(response.headers["retry-after"]) >= 1
    job = secured.http.get(response.headers["location"], headers=auth(KEY_A))
    if job.json()["status"] in ("queued", "running"):
        assert int(job.headers["retry-after"]) >= 1


class Receiver:
    """A loopback HTTP server recording webhook deliveries; fails the first ``fail_first``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 500 if len(receiver.deliveries) <= receiver.fail_first else 204
                self.send_response(status)
                self.end_headers()
                if status == 204:
                    receiver.arrived.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


def test_webhook_is_signed_retried_and_delivers_the_final_job(secured: Service) -> None:
    receiver = Receiver(fail_first=1)
    response = secured.http.post(
        "/v1/classify", files=files(callback_url=receiver.url), headers=auth(KEY_A)
    )
    assert response.status_code == 202, response.text
    assert receiver.arrived.wait(60), "no successful delivery"
    assert len(receiver.deliveries) == 2  # the first answer was a 500: retried with backoff
    (first_headers, _), (headers, body) = receiver.deliveries
    assert first_headers["webhook-id"] == headers["webhook-id"]
    job = Webhook(SECRET).verify(body, headers)  # raises on a bad signature
    assert job["id"] == response.json()["id"] and job["status"] == "succeeded"
    assert job["result"]["images"][0]["filename"] == "a.png"
    with pytest.raises(Exception):  # noqa: B017 - the library's own error type
        Webhook("whsec_" + "A" * 32).verify(body, headers)


def finished_deliveries(service: Service) -> int:
    logs = "".join(p.read_text() for p in service.logs.glob("*.log"))
    return len(re.findall(r"clipq\.webhook\[[^]]+\] succeeded", logs))


def test_callback_urls_are_never_logged_in_full(secured: Service) -> None:
    receiver = Receiver(fail_first=1)
    url = receiver.url + "/s3cret-path-4711?token=tok-0815-xyz"
    before = finished_deliveries(secured)
    response = secured.http.post("/v1/classify", files=files(callback_url=url), headers=auth(KEY_A))
    assert response.status_code == 202, response.text
    assert receiver.arrived.wait(60), "no successful delivery"
    assert len(receiver.deliveries) == 2  # a failed attempt, logged, and a retry
    deadline = time.monotonic() + 10
    while finished_deliveries(secured) == before:  # its log lines are written by now
        assert time.monotonic() < deadline, "the delivery's success was never logged"
        time.sleep(0.1)
    # Every process's log: the API, both workers, and the private Redis server.
    logs = "".join(p.read_text() for p in secured.logs.parent.rglob("*.log"))
    assert "s3cret-path-4711" not in logs and "tok-0815-xyz" not in logs
    assert f"http://127.0.0.1:{receiver.server.server_port}/#" in logs  # the redacted form


def test_cancelled_jobs_call_back_too(secured: Service) -> None:
    receiver = Receiver()
    many = [("images", (f"{i}.png", png_bytes((i, 1, 1)), "image/png")) for i in range(200)]
    response = secured.http.post(
        "/v1/classify",
        files=[*many, ("labels", (None, "a")), ("callback_url", (None, receiver.url))],
        headers=auth(KEY_A),
    )
    secured.http.delete(f"/v1/jobs/{response.json()['id']}", headers=auth(KEY_A))
    assert receiver.arrived.wait(60)
    assert json.loads(receiver.deliveries[-1][1])["status"] == "cancelled"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://[::1]:8080/hook",
        "http://127.0.0.2:9/hook",  # loopback, but not the allow-listed address
        "ftp://example.com/hook",
        "http://user:pw@127.0.0.1/hook",
        "http://[2002:7f00:1::]/hook",  # 6to4: 127.0.0.1 inside an address Python calls global
    ],
)
def test_callbacks_to_private_addresses_are_refused(secured: Service, url: str) -> None:
    response = secured.http.post("/v1/classify", files=files(callback_url=url), headers=auth(KEY_A))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "callback_url"


def test_callbacks_need_a_configured_secret(service: Service) -> None:
    response = service.http.post("/v1/classify", files=files(callback_url="http://93.184.216.34/"))
    assert response.status_code == 422
    assert "not configured" in response.json()["detail"]


def test_the_cli_sends_its_key(secured: Service, tmp_path: Path) -> None:
    picture = tmp_path / "red.png"
    picture.write_bytes(png_bytes((200, 10, 10), (32, 32)))
    clipq = str(Path(sys.executable).parent / "clipq")
    plain = {k: v for k, v in os.environ.items() if not k.startswith("CLIPQ_")}

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [clipq, *args], capture_output=True, text=True, timeout=120, env={**plain, **env}
        )

    ingest = ["ingest", "-c", "cli", "-q", str(picture)]
    refused = run(*ingest, "--server", secured.base_url)
    assert refused.returncode == 2 and "API key" in refused.stderr
    added = run(*ingest, "--server", secured.base_url, "--api-key", KEY_A)
    assert added.returncode == 0 and "cli: 1 added" in added.stdout, added.stderr
    # The server and the key from the settings (CLIPQ_SERVER, CLIPQ_API_KEY), as for the service.
    search = ["search", "-c", "cli", "--query", "red", "--min-score", "-1"]
    theirs = run(*search, CLIPQ_SERVER=secured.base_url, CLIPQ_API_KEY=KEY_B)
    assert theirs.returncode == 2 and "no collection 'cli'" in theirs.stderr
    mine = run(*search, CLIPQ_SERVER=secured.base_url, CLIPQ_API_KEY=KEY_A)
    assert mine.returncode == 0 and "red.png" in mine.stdout, mine.stderr
    scenes = run("scenes", "-q", "--server", secured.base_url, "--api-key", KEY_A, str(picture))
    assert scenes.returncode == 0 and scenes.stdout.startswith("red.png"), scenes.stderr


def test_models_need_a_key_and_name_the_model_the_workers_run(secured: Service) -> None:
    refused = secured.http.get("/v1/models")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    listing = secured.http.get("/v1/models", headers=auth(KEY_A)).json()
    assert listing["workers"] == 1
    [model] = listing["models"]
    # This service runs a random CLIP and detector from folders: a general CLIP, no domain.
    assert model["id"] == secured.env["CLIPQ_CLIP_MODEL"] and model["kind"] == "clip"
    assert model["input_size"] == 32 and model["knows"] is None and model["advice"] is None
    assert model["detector"] == {
        "id": secured.env["CLIPQ_DETECTOR_MODEL"],
        "kind": "custom",
        "summary": f"A Mask R-CNN loaded from {secured.env['CLIPQ_DETECTOR_MODEL']}.",
    }
    assert socket.gethostname() not in json.dumps(listing)  # workers by count, never by name
