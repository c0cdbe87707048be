"""Reconstruction plans: scenes and matcher, a pair shortlist, dataset hygiene, and the bundle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Response, UploadFile

from api.auth import OwnerDep
from api.deps import CollectionsDep, SettingsDep, StoreDep, require_multipart
from api.forms import MODEL_FIELD, served_model
from api.jobs import SubmitterDep, accepted
from api.openapi import problems
from api.routes.collections import existing
from api.routes.scenes import taxonomy_from_form
from api.uploads import AcceptedUpload, accept_uploads
from clipcore.errors import InvalidInput
from clipcore.plans.bundle import plan_archive
from clipcore.plans.schemas import ShortlistStrategy
from clipcore.taxonomy import Speed, load_default_taxonomy
from clipq.contracts.jobs import Job, JobKind, JobStatus, PlanPayload, PlanResult, payload_from_json
from clipq.errors import Conflict, NotFound
from clipq.transport import same_model

router = APIRouter(prefix="/v1/plans", tags=["plans"])

PlanId = Annotated[str, Path(description="The id of the plan job.")]


def unique_names(uploads: list[AcceptedUpload]) -> None:
    """Pairs name images by file name (as hloc and COLMAP do): each must be unique."""
    first: dict[str, int] = {}
    for index, upload in enumerate(uploads):
        name = upload.ref.filename
        if name in first:
            raise InvalidInput.for_field(
                f"images[{index}]",
                f"file name {name!r} is also images[{first[name]}]'s; a plan names images by "
                "file name, so each must be unique",
            )
        first[name] = index


@router.post(
    "",
    status_code=202,
    response_model=Job,
    responses=problems(400, 401, 413, 415, 422, 429, 503, 507),
    dependencies=[Depends(require_multipart)],
)
async def create_plan(
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    collections: CollectionsDep,
    images: Annotated[
        list[UploadFile] | None,
        File(description="The dataset's images (two or more), or give collection_id."),
    ] = None,
    collection_id: Annotated[
        str | None,
        Form(
            description="Plan a collection's images instead (from its stored embeddings and "
            "thumbnails; sharpness and EXIF need the files and are not measured)."
        ),
    ] = None,
    speed: Annotated[
        Speed, Form(description="fast, balanced (the primary matcher) or accurate.")
    ] = Speed.balanced,
    taxonomy: Annotated[
        str | None,
        Form(description="A taxonomy as JSON (the schema of GET /v1/scene-types)."),
    ] = None,
    strategy: Annotated[
        ShortlistStrategy,
        Form(
            description="retrieval (k nearest neighbours by embedding), sequential (a window in "
            "file-name order), retrieval+sequential (ordered captures) or exhaustive."
        ),
    ] = ShortlistStrategy.retrieval,
    pairs_per_image: Annotated[
        int | None,
        Form(ge=1, le=200, description="k of the shortlist; default CLIPQ_PLAN_PAIRS_PER_IMAGE."),
    ] = None,
    window: Annotated[
        int | None,
        Form(ge=0, le=200, description="The sequential window; default CLIPQ_PLAN_WINDOW."),
    ] = None,
    callback_url: Annotated[
        str | None, Form(description="POSTed the final Job (signed, Standard Webhooks).")
    ] = None,
    model: Annotated[str | None, Form(description=MODEL_FIELD)] = None,
) -> Job:
    """Plan a reconstruction: each image's scene and the dataset's matcher, which image pairs to
    match, what to drop or review, and a downloadable bundle of ready-to-run scripts
    (``result.bundle_url``). Answers 202 at once; poll the job for the result."""
    callback = await submitter.callback(callback_url)
    custom = taxonomy_from_form(taxonomy)
    uploads: list[AcceptedUpload] = []
    if collection_id:
        if images:
            raise InvalidInput.for_field("images", "give images or a collection_id, not both")
        collection = await existing(collections, collection_id, submitter.owner)
        if collection.image_count < 2:
            raise InvalidInput.for_field("collection_id", "a plan needs two or more images")
        if model and not same_model(served_model(settings, model), collection.model):
            raise InvalidInput.for_field(
                "model", f"the collection's images are embedded with {collection.model!r}"
            )
        runs_on, total = collection.model, collection.image_count
    else:
        runs_on = served_model(settings, model)
        uploads = await accept_uploads(images or [], settings)
        if len(uploads) < 2:
            raise InvalidInput.for_field("images", "a plan needs two or more images")
        unique_names(uploads)
        total = len(uploads)
    payload = PlanPayload(
        images=[upload.ref for upload in uploads],
        collection_id=collection_id or None,
        speed=speed,
        taxonomy=custom,
        strategy=strategy,
        pairs_per_image=pairs_per_image or settings.plan_pairs_per_image,
        window=settings.plan_window if window is None else window,
    )
    job = await submitter.submit(payload, uploads, total, callback, model=runs_on)
    return accepted(response, job)


@router.get(
    "/{plan_id}/bundle",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "The plan's archive."},
        **problems(401, 404, 409),
    },
)
async def get_plan_bundle(plan_id: PlanId, store: StoreDep, owner: OwnerDep) -> Response:
    """The plan's ready-to-run artefacts as one zip: pairs.txt (hloc's format), hloc, COLMAP
    and GLOMAP scripts, a deep-image-matching config where it has the matcher, and a README."""
    job = await store.get_job(plan_id, owner)
    if job is None or job.kind != JobKind.plan:
        raise NotFound(f"no plan {plan_id!r}: it never existed or its results have expired")
    if job.status != JobStatus.succeeded or not isinstance(job.result, PlanResult):
        raise Conflict(f"plan {plan_id} is {job.status}; its bundle exists once it has succeeded")
    payload = payload_from_json(await store.payload(plan_id) or "")
    taxonomy = (payload.taxonomy if isinstance(payload, PlanPayload) else None) or (
        load_default_taxonomy()
    )
    result = job.result
    if result.summary is None:  # a plan has two or more images, but all may be unreadable
        raise Conflict(f"plan {plan_id} classified fewer than two images: nothing to plan")
    archive = plan_archive(
        result.summary,
        result.shortlist,
        result.hygiene,
        model=result.model,
        taxonomy=taxonomy,
        speed=result.speed,
    )
    return Response(
        archive,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="plan-{plan_id}.zip"'},
    )
