"""A Python client generated from the live /openapi.json runs a classify job with typed classes."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import Service
from tests.support import png_bytes


def test_generated_client_classifies_with_typed_classes(service: Service, tmp_path: Path) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_bytes(service.http.get("/openapi.json").content)
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    generator = str(Path(sys.executable).parent / "openapi-python-client")
    output = str(tmp_path / "clipq_client")
    command = [generator, "generate", "--path", str(spec), "--meta", "none"]
    command += ["--output-path", output]
    subprocess.run(command, check=True, env=env, capture_output=True)
    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module("clipq_client")
        classify = importlib.import_module("clipq_client.api.classify.create_classify_job")
        get_job = importlib.import_module("clipq_client.api.jobs.get_job")
        models = importlib.import_module("clipq_client.models")
        types = importlib.import_module("clipq_client.types")

        client = client_module.Client(base_url=service.base_url)
        body = models.BodyCreateClassifyJob(
            images=[
                types.File(payload=io.BytesIO(png_bytes((220, 40, 40))), file_name="red.png"),
                types.File(payload=io.BytesIO(png_bytes((40, 80, 220))), file_name="blue.png"),
            ],
            labels=["red", "blue", "green"],
            top_k=2,
        )
        response = classify.sync_detailed(client=client, body=body)
        assert response.status_code == 202
        job = response.parsed
        assert isinstance(job, models.Job)
        assert job.status == models.JobStatus.QUEUED

        deadline = time.monotonic() + 60
        while job.status not in (models.JobStatus.SUCCEEDED, models.JobStatus.FAILED):
            assert time.monotonic() < deadline
            job = get_job.sync(job_id=job.id, client=client, wait=5)
        assert job.status == models.JobStatus.SUCCEEDED
        assert isinstance(job.result, models.ClassifyResult)
        first = job.result.images[0]
        assert isinstance(first, models.ClassifiedImage)
        assert first.filename == "red.png"
        assert all(isinstance(p, models.LabelScore) for p in first.predictions)
        assert len(first.predictions) == 2

        plans = importlib.import_module("clipq_client.api.plans.create_plan")
        bundle = importlib.import_module("clipq_client.api.plans.get_plan_bundle")
        pictures = [png_bytes((i * 40, 90, 200 - i * 30)) for i in range(4)]
        plan = plans.sync(
            client=client,
            body=models.BodyCreatePlan(
                images=[
                    types.File(payload=io.BytesIO(data), file_name=f"v{i}.png")
                    for i, data in enumerate(pictures)
                ],
                pairs_per_image=2,
            ),
        )
        while plan.status not in (models.JobStatus.SUCCEEDED, models.JobStatus.FAILED):
            assert time.monotonic() < deadline + 60
            plan = get_job.sync(job_id=plan.id, client=client, wait=5)
        assert isinstance(plan.result, models.PlanResult)
        assert isinstance(plan.result.shortlist.pairs[0], models.ImagePair)
        assert plan.result.shortlist.exhaustive_pairs == 6
        archive = bundle.sync_detailed(plan_id=plan.id, client=client)
        assert archive.status_code == 200 and archive.content[:2] == b"PK"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("clipq_client")]:
            del sys.modules[name]
