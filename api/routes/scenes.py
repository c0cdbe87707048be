"""Scene classification jobs with matcher recommendations for 3D reconstruction."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile

from api.deps import SettingsDep, require_multipart
from api.forms import MODEL_FIELD, served_model
from api.jobs import SubmitterDep, accepted
from api.openapi import problems
from api.uploads import accept_uploads
from clipcore.problem import FieldError
from clipcore.taxonomy import Speed, Taxonomy, TaxonomyError, load_default_taxonomy, parse_taxonomy
from clipq.contracts.jobs import Job, ScenesPayload

router = APIRouter(prefix="/v1", tags=["scenes"])


def taxonomy_from_form(text: str | None) -> Taxonomy | None:
    """The client's taxonomy (JSON text), or None for the default; errors name ``taxonomy.…``."""
    if text is None or not text.strip():
        return None
    try:
        return parse_taxonomy(text)
    except TaxonomyError as exc:
        errors = [
            FieldError(field=f"taxonomy.{e.field}".removesuffix(".taxonomy"), message=e.message)
            for e in exc.errors or []
        ]
        raise TaxonomyError(exc.detail, errors=errors) from None


@router.post(
    "/scenes",
    status_code=202,
    response_model=Job,
    responses=problems(400, 401, 413, 415, 422, 429, 503, 507),
    dependencies=[Depends(require_multipart)],
)
async def create_scenes_job(
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    images: Annotated[list[UploadFile], File(description="The images of the dataset.")],
    speed: Annotated[
        Speed, Form(description="fast, balanced (the primary matcher) or accurate.")
    ] = Speed.balanced,
    taxonomy: Annotated[
        str | None,
        Form(
            description="A taxonomy as JSON (the schema of GET /v1/scene-types); default: that one."
        ),
    ] = None,
    callback_url: Annotated[
        str | None, Form(description="POSTed the final Job (signed, Standard Webhooks).")
    ] = None,
    model: Annotated[str | None, Form(description=MODEL_FIELD)] = None,
) -> Job:
    """Classify each image's scene and recommend an image matcher; two or more images also get
    the dataset summary. Answers 202 at once; poll the job for the result."""
    runs_on = served_model(settings, model)
    callback = await submitter.callback(callback_url)
    custom = taxonomy_from_form(taxonomy)
    uploads = await accept_uploads(images, settings)
    payload = ScenesPayload(images=[upload.ref for upload in uploads], speed=speed, taxonomy=custom)
    job = await submitter.submit(payload, uploads, len(uploads), callback, model=runs_on)
    return accepted(response, job)


@router.get("/scene-types", response_model=Taxonomy, responses=problems(401))
async def list_scene_types() -> Taxonomy:
    """The default scene taxonomy: scenes, prompts and matcher recommendations."""
    return load_default_taxonomy()
