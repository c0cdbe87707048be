"""The seed's own endpoints, for its users: synchronous, with its JSON shapes field for field.

``POST /api/classify`` (field ``image``), ``POST /api/classify-batch`` (field
``images``) and ``GET /api/scene-types`` enqueue a scene job like any other,
wait for it (without blocking a thread) and answer as the seed's Flask app did.
"""

from __future__ import annotations

import base64
import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile
from PIL import Image

from api.deps import SettingsDep, require_multipart
from api.jobs import JobSubmitter, SubmitterDep
from api.openapi import problems
from api.uploads import AcceptedUpload, accept_uploads
from clipcore.errors import InvalidImage
from clipcore.scenes import DatasetSummary, SceneImageResult
from clipcore.schemas import SceneImage
from clipcore.taxonomy import Matcher, Speed, load_default_taxonomy
from clipq.contracts.jobs import JobStatus, ScenesPayload, ScenesResult
from clipq.errors import Conflict, JobTimeout, RelayedProblem

router = APIRouter(prefix="/api", tags=["seed-compatible"])


def percent(probability: float) -> float:
    return round(100 * probability, 2)


def seed_model(matcher: Matcher) -> dict[str, Any]:
    return {"name": matcher.name, "speed": str(matcher.speed), "reason": matcher.reason}


def seed_predictions(prediction: SceneImageResult) -> list[dict[str, Any]]:
    taxonomy = load_default_taxonomy()
    return [
        {
            "type": score.scene,
            "description": taxonomy.scene(score.scene).description,
            "confidence": percent(score.probability),
        }
        for score in prediction.scores
    ]


def seed_single(prediction: SceneImageResult, image: AcceptedUpload) -> dict[str, Any]:
    return {
        "success": True,
        "image": data_url(image.data),
        "top_prediction": {
            "type": prediction.top_scene,
            "description": prediction.description,
            "confidence": percent(prediction.confidence),
            "recommended_model": seed_model(prediction.recommended_matcher),
        },
        "all_predictions": seed_predictions(prediction),
    }


def seed_batch_entry(image: SceneImage) -> dict[str, Any]:
    if image.prediction is None:
        return {"filename": image.filename, "error": image.error.detail if image.error else ""}
    prediction = image.prediction
    return {
        "filename": image.filename,
        "scene_type": prediction.top_scene,
        "description": prediction.description,
        "confidence": percent(prediction.confidence),
        "recommended_model": seed_model(prediction.recommended_matcher),
        "all_predictions": seed_predictions(prediction),
    }


def seed_summary(summary: DatasetSummary | None, classified: int) -> dict[str, Any]:
    if summary is None:
        return {
            "total_images": classified,
            "scene_distribution": {},
            "dominant_scenes": [],
            "recommended_models": [],
        }
    return {
        "total_images": summary.total_images,
        "scene_distribution": summary.scene_distribution,
        "dominant_scenes": summary.dominant_scenes,
        "recommended_models": [
            {"scene_type": d.scene, "percentage": d.percentage, "model": seed_model(d.matcher)}
            for d in summary.recommended_matchers
        ],
    }


def data_url(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        mime = Image.MIME.get(image.format or "", "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def run_scenes(submitter: JobSubmitter, uploads: list[AcceptedUpload]) -> ScenesResult:
    """Submit a scenes job and wait for it; the wait slot is taken first, so that a refused
    wait (429) leaves no job behind."""
    payload = ScenesPayload(images=[u.ref for u in uploads], speed=Speed.balanced)
    settings, store = submitter.settings, submitter.store
    async with store.events.slot(submitter.owner):
        model = settings.served_models[0]  # the seed's routes know one model: the default
        job = await submitter.submit(payload, uploads, len(uploads), model=model)
        final = await store.wait_for_final(job.id, settings.sync_timeout_seconds, submitter.owner)
    if final is None or not final.status.is_final:
        raise JobTimeout(
            f"no answer within {settings.sync_timeout_seconds:.0f} s; the job goes on: "
            f"poll /v1/jobs/{job.id}"
        )
    if final.status == JobStatus.succeeded and isinstance(final.result, ScenesResult):
        return final.result
    if final.error:
        raise RelayedProblem(final.error)
    raise Conflict(f"job {job.id} was {final.status}")


SeedResponse = dict[str, Any]


@router.post(
    "/classify",
    responses=problems(400, 401, 413, 415, 422, 429, 503, 507),
    dependencies=[Depends(require_multipart)],
)
async def seed_classify(
    submitter: SubmitterDep,
    settings: SettingsDep,
    image: Annotated[UploadFile, File(description="One image.")],
) -> SeedResponse:
    """Seed-compatible: classify one image and answer synchronously, as the seed's Flask app."""
    uploads = await accept_uploads([image], settings, field="image")
    result = await run_scenes(submitter, uploads)
    entry = result.images[0]
    if entry.prediction is None:
        detail = (entry.error.detail if entry.error else None) or "could not be classified"
        raise InvalidImage(entry.filename, detail, field="image")
    return seed_single(entry.prediction, uploads[0])


@router.post(
    "/classify-batch",
    responses=problems(400, 401, 413, 415, 422, 429, 503, 507),
    dependencies=[Depends(require_multipart)],
)
async def seed_classify_batch(
    submitter: SubmitterDep,
    settings: SettingsDep,
    images: Annotated[list[UploadFile], File(description="The images of the dataset.")],
) -> SeedResponse:
    """Seed-compatible: classify a batch synchronously, with the dataset summary."""
    uploads = await accept_uploads(images, settings)
    result = await run_scenes(submitter, uploads)
    classified = sum(1 for image in result.images if image.prediction is not None)
    return {
        "success": True,
        "results": [seed_batch_entry(image) for image in result.images],
        "summary": seed_summary(result.summary, classified),
    }


@router.get("/scene-types", responses=problems(401))
async def seed_scene_types() -> SeedResponse:
    """Seed-compatible: the scene types with their descriptions."""
    taxonomy = load_default_taxonomy()
    return {
        "success": True,
        "scene_types": [
            {
                "type": scene.name,
                "description": scene.description,
                "use_cases": scene.use_cases,
                "recommended_model": seed_model(scene.recommendations.primary),
            }
            for scene in taxonomy.scenes
        ],
    }
