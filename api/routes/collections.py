"""Image collections: create, ingest, search by text or by image, evaluate retrieval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import Response as RawResponse

from api.auth import OwnerDep
from api.deps import CollectionsDep, SettingsDep, require_multipart
from api.forms import ingest_labels, ingest_metadata, served_model
from api.jobs import JobSubmitter, SubmitterDep, accepted
from api.openapi import problems
from api.uploads import AcceptedUpload, accept_uploads
from clipcore.errors import InvalidInput
from clipcore.prompts import MAX_LABEL_LENGTH
from clipcore.schemas import Fusion, RerankMode
from clipq.contracts.collections import (
    Collection,
    CollectionCreate,
    CollectionImage,
    CollectionImagePage,
    EvaluatePayload,
    EvaluateRequest,
    ImageLabels,
    IngestItem,
    IngestPayload,
    SearchOptions,
    SearchPayload,
    SearchRequest,
    SimilarRequest,
)
from clipq.contracts.jobs import Job
from clipq.errors import NotFound, QuotaExceeded
from clipq.settings import Settings

router = APIRouter(prefix="/v1/collections", tags=["collections"])
MAX_OFFSET = 1_000_000_000  # beyond any collection; keeps offset + limit inside Redis' range
THUMBNAIL_CACHE = "private, max-age=86400"  # the bytes of an image id never change


async def existing(collections: CollectionsDep, collection_id: str, owner: str) -> Collection:
    collection = await collections.get(collection_id, owner)
    if collection is None:
        raise NotFound(f"no collection {collection_id!r}")
    return collection


@router.post(
    "", status_code=201, response_model=Collection, responses=problems(400, 401, 403, 409, 422)
)
async def create_collection(
    body: CollectionCreate,
    collections: CollectionsDep,
    settings: SettingsDep,
    owner: OwnerDep,
    response: Response,
) -> Collection:
    """Create an empty collection bound to one model (``model``, default the deployment's
    first): its images are embedded, and its searches run, on that model's workers. A name
    the API key's collections already have (case and spacing aside) is a 409 naming it."""
    model = served_model(settings, body.model, "model")
    limit = settings.max_collections_per_tenant
    collection = await collections.create(body.name, model, body.crop_background, owner, limit)
    if collection is None:
        raise QuotaExceeded(
            f"this API key holds {limit} collections (CLIPQ_MAX_COLLECTIONS_PER_TENANT); "
            "delete one first"
        )
    response.headers["Location"] = f"/v1/collections/{collection.id}"
    return collection


@router.get("", response_model=list[Collection], responses=problems(401))
async def list_collections(collections: CollectionsDep, owner: OwnerDep) -> list[Collection]:
    return await collections.owned_by(owner)


@router.get("/{collection_id}", response_model=Collection, responses=problems(401, 404, 422))
async def get_collection(
    collection_id: str, collections: CollectionsDep, owner: OwnerDep
) -> Collection:
    return await existing(collections, collection_id, owner)


@router.delete("/{collection_id}", status_code=204, responses=problems(401, 404, 422))
async def delete_collection(
    collection_id: str, collections: CollectionsDep, owner: OwnerDep
) -> RawResponse:
    """Delete the collection with all its images and embeddings."""
    await existing(collections, collection_id, owner)
    if not await collections.delete(collection_id):
        raise NotFound(f"no collection {collection_id!r}")
    return RawResponse(status_code=204)


@router.post(
    "/{collection_id}/images",
    status_code=202,
    response_model=Job,
    responses=problems(400, 401, 403, 404, 413, 415, 422, 429, 503, 507),
    dependencies=[Depends(require_multipart)],
)
async def ingest_images(
    collection_id: str,
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    collections: CollectionsDep,
    images: Annotated[list[UploadFile], File(description="Images to add.")],
    labels: Annotated[
        list[str] | None,
        Form(
            description="Per image, in order: its labels, comma-separated (each at most "
            f"{MAX_LABEL_LENGTH} characters; at most CLIPQ_MAX_LABELS distinct in all)."
        ),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        Form(description="Per image, in order: a JSON object (at most 4 KB, 8 levels deep)."),
    ] = None,
    callback_url: Annotated[
        str | None, Form(description="POSTed the final Job (signed, Standard Webhooks).")
    ] = None,
) -> Job:
    """Add images: each gets its CLIP embedding, Mask R-CNN region crops and their embeddings,
    and a thumbnail. Bytes already in the collection are reported as duplicates."""
    collection = await existing(collections, collection_id, submitter.owner)
    callback = await submitter.callback(callback_url)
    per_image_labels = ingest_labels(labels, len(images), settings.max_labels)
    per_image_metadata = ingest_metadata(metadata, len(images))
    quota = settings.max_images_per_tenant
    if await collections.stored_images(submitter.owner) + len(images) > quota:
        raise QuotaExceeded(
            f"this API key may store {quota} images (CLIPQ_MAX_IMAGES_PER_TENANT); "
            "delete a collection first"
        )
    uploads = await accept_uploads(images, settings)
    items = [
        IngestItem(
            sha256=upload.ref.sha256, filename=upload.ref.filename, labels=labels_, metadata=meta
        )
        for upload, labels_, meta in zip(uploads, per_image_labels, per_image_metadata, strict=True)
    ]
    payload = IngestPayload(collection_id=collection_id, images=items)
    job = await submitter.submit(payload, uploads, len(items), callback, model=collection.model)
    return accepted(response, job)


@router.get(
    "/{collection_id}/images", response_model=CollectionImagePage, responses=problems(401, 404, 422)
)
async def list_images(
    collection_id: str,
    collections: CollectionsDep,
    owner: OwnerDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CollectionImagePage:
    await existing(collections, collection_id, owner)
    total, images = await collections.images(collection_id, offset, limit)
    return CollectionImagePage(total=total, images=images)


@router.delete(
    "/{collection_id}/images/{image_id}", status_code=204, responses=problems(401, 404, 422)
)
async def delete_image(
    collection_id: str, image_id: str, collections: CollectionsDep, owner: OwnerDep
) -> RawResponse:
    """Delete one image: no search, listing or evaluation shows it from then on, and its
    bytes may be added again (as a new image)."""
    await existing(collections, collection_id, owner)
    if not await collections.delete_image(collection_id, image_id):
        raise NotFound(f"no image {image_id!r} in collection {collection_id!r}")
    return RawResponse(status_code=204)


@router.patch(
    "/{collection_id}/images/{image_id}",
    response_model=CollectionImage,
    responses=problems(400, 401, 404, 409, 422),
)
async def set_image_labels(
    collection_id: str,
    image_id: str,
    body: ImageLabels,
    collections: CollectionsDep,
    settings: SettingsDep,
    owner: OwnerDep,
) -> CollectionImage:
    """Replace an image's labels (what evaluation takes as its truth). 409 for an image
    imported as an embedding: it keeps the labels of its import."""
    await existing(collections, collection_id, owner)
    labels = list(dict.fromkeys(body.labels))
    if len(labels) > settings.max_labels:
        raise InvalidInput.for_field(
            "labels", f"{len(labels)} labels is more than {settings.max_labels} (CLIPQ_MAX_LABELS)"
        )
    image = await collections.set_labels(collection_id, image_id, labels)
    if image is None:
        raise NotFound(f"no image {image_id!r} in collection {collection_id!r}")
    return image


@router.get(
    "/{collection_id}/images/{image_id}/thumbnail",
    response_class=RawResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **problems(401, 404, 422)},
)
async def get_thumbnail(
    collection_id: str, image_id: str, collections: CollectionsDep, owner: OwnerDep
) -> RawResponse:
    await existing(collections, collection_id, owner)
    data = await collections.thumbnail(collection_id, image_id)
    if data is None:
        raise NotFound(f"no image {image_id!r} in collection {collection_id!r}")
    return RawResponse(data, media_type="image/jpeg", headers={"Cache-Control": THUMBNAIL_CACHE})


@router.post(
    "/{collection_id}/search",
    status_code=202,
    response_model=Job,
    responses=problems(400, 401, 404, 422, 429, 503, 507),
)
async def search_collection(
    collection_id: str,
    body: SearchRequest,
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    collections: CollectionsDep,
) -> Job:
    """Text→image search; answers 202 — use GET /v1/jobs/{id}?wait=N for one round trip."""
    collection = await existing(collections, collection_id, submitter.owner)
    callback = await submitter.callback(body.callback_url)
    return await submit_search(submitter, settings, response, body, callback, collection)


@router.post(
    "/{collection_id}/images/{image_id}/similar",
    status_code=202,
    response_model=Job,
    responses=problems(400, 401, 404, 422, 429, 503, 507),
)
async def find_similar_images(
    collection_id: str,
    image_id: str,
    body: SimilarRequest,
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    collections: CollectionsDep,
) -> Job:
    """Image→image search: the collection's images most like this one (itself left out)."""
    collection = await existing(collections, collection_id, submitter.owner)
    if not await collections.has_image(collection_id, image_id):
        raise NotFound(f"no image {image_id!r} in collection {collection_id!r}")
    callback = await submitter.callback(body.callback_url)
    return await submit_search(
        submitter, settings, response, body, callback, collection, image_id=image_id
    )


@router.post(
    "/{collection_id}/similar",
    status_code=202,
    response_model=Job,
    responses=problems(400, 401, 404, 413, 415, 422, 429, 503, 507),
    dependencies=[Depends(require_multipart)],
)
async def find_similar_to_upload(
    collection_id: str,
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    collections: CollectionsDep,
    image: Annotated[UploadFile, File(description="Find the collection's images like this.")],
    top_k: Annotated[int, Form(ge=1, le=1000)] = 10,
    rerank: Annotated[RerankMode, Form()] = RerankMode.none,
    fusion: Annotated[Fusion, Form()] = Fusion.max,
    crop_weight: Annotated[float, Form(ge=0, le=1, description="For fusion=weighted.")] = 0.5,
    min_score: Annotated[
        float | None,
        Form(ge=-1, le=1, description="Below this best score (cosine): 'no match'."),
    ] = None,
    callback_url: Annotated[
        str | None, Form(description="POSTed the final Job (signed, Standard Webhooks).")
    ] = None,
) -> Job:
    """Image→image search: the collection's images most like an uploaded one."""
    collection = await existing(collections, collection_id, submitter.owner)
    callback = await submitter.callback(callback_url)
    [upload] = await accept_uploads([image], settings)
    options = SearchOptions(
        top_k=top_k, rerank=rerank, fusion=fusion, crop_weight=crop_weight, min_score=min_score
    )
    return await submit_search(
        submitter, settings, response, options, callback, collection, [upload], image=upload.ref
    )


async def submit_search(
    submitter: JobSubmitter,
    settings: Settings,
    response: Response,
    options: SearchOptions,
    callback: str,
    collection: Collection,
    uploads: Sequence[AcceptedUpload] = (),
    **query: object,
) -> Job:
    """Queue one search (text, image id or uploaded image: ``query`` or ``options.query``)."""
    # None: for text, the worker applies the collection's own threshold (search_decision)
    min_score = settings.search_min_score if options.min_score is None else options.min_score
    payload = SearchPayload(
        **options.model_dump(exclude={"min_score", "callback_url"}),
        **query,
        collection_id=collection.id,
        min_score=min_score,
    )
    job = await submitter.submit(payload, uploads, 1, callback, model=collection.model)
    return accepted(response, job)


@router.post(
    "/{collection_id}/evaluate",
    status_code=202,
    response_model=Job,
    responses=problems(400, 401, 404, 422, 429, 503, 507),
)
async def evaluate_collection(
    collection_id: str,
    body: EvaluateRequest,
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    collections: CollectionsDep,
) -> Job:
    """Recall@K and MRR with and without crop reranking, per query and overall."""
    collection = await existing(collections, collection_id, submitter.owner)
    callback = await submitter.callback(body.callback_url)
    known = await collections.labels(collection_id)
    queries = body.resolved_queries(known, settings.max_queries)
    payload = EvaluatePayload(
        **body.model_dump(exclude={"queries", "callback_url"}),
        collection_id=collection_id,
        queries=queries,
    )
    job = await submitter.submit(payload, [], len(queries), callback, model=collection.model)
    return accepted(response, job)
