"""API keys, tenancy, idempotency and completion webhooks, against real processes."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import Service, env_on, private_redis, running_service
from tests.support import png_bytes

KEY_A, KEY_B = "key-a-0123456789abcdef", "key-b-fedcba9876543210"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


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
        )
        with running_service(env, folder / "logs") as service:  # /readyz needs no key
            yield service


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_health_stays_open_and_everything_else_needs_a_key(secured: Service) -> None:
    assert secured.http.get("/healthz").status_code == 200
    for method, path in [
        ("GET", "/v1/jobs/x"),
        ("GET", "/v1/collections"),
        ("GET", "/v1/scene-types"),
        ("GET", "/api/scene-types"),
        ("POST", "/v1/collections"),
    ]:
        for headers in ({}, auth("wrong-key"), {"Authorization": "Basic abc"}):
            response = secured.http.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert secured.http.get("/v1/scene-types", headers=auth(KEY_A)).status_code == 200
    assert secured.http.get("/v1/scene-types", headers=auth(KEY_B)).status_code == 200


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

    made = secured.http.post("/v1/collections", json={"name": "a's"}, headers=auth(KEY_A)).json()
    path = f"/v1/collections/{made['id']}"
    assert [c["id"] for c in secured.http.get("/v1/collections", headers=auth(KEY_B)).json()] == []
    assert secured.http.get(path, headers=auth(KEY_B)).status_code == 404
    assert (
        secured.http.post(f"{path}/search", json={"query": "x"}, headers=auth(KEY_B)).status_code
        == 404
    )
    assert secured.http.delete(path, headers=auth(KEY_B)).status_code == 404
    assert secured.http.get(path, headers=auth(KEY_A)).status_code == 200


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
