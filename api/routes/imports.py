"""Bulk import of precomputed embeddings (clip-retrieval's ``img_emb`` + ``metadata``).

A large import arrives as parts, each a job: an ``.npy`` of embeddings with, optionally,
the Parquet or CSV of their metadata. The API checks the array's header against the
collection's model before anything is queued (422 naming the field); the worker checks the
numbers, appends the part's rows and marks the part imported in one transaction, so a part
sent again (after a lost response, by a resumed ``clipq import``) adds nothing.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, File, Form, Response, UploadFile

from api.auth import OwnerDep
from api.deps import CollectionsDep, SettingsDep, StoreDep, require_multipart
from api.jobs import SubmitterDep, accepted
from api.openapi import problems
from api.routes.collections import existing
from api.uploads import AcceptedUpload
from clipcore.errors import InvalidInput
from clipq.contracts.collections import ImageRef, ImportedPart, ImportedParts, ImportPayload
from clipq.contracts.jobs import Job
from clipq.errors import Conflict, QuotaExceeded
from clipq.npy import read_npy_header
from clipq.transport import same_model

router = APIRouter(prefix="/v1/collections", tags=["collections"])
METADATA_SUFFIXES = (".parquet", ".csv")
MAX_PART_NAME = 300


@router.post(
    "/{collection_id}/embeddings",
    status_code=202,
    response_model=Job,
    responses=problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 507),
    dependencies=[Depends(require_multipart)],
)
async def import_embeddings(
    collection_id: str,
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    collections: CollectionsDep,
    store: StoreDep,
    embeddings: Annotated[
        UploadFile,
        File(description="An .npy of float16 or float32 rows (images x dimensions)."),
    ],
    metadata: Annotated[
        UploadFile | None,
        File(
            description="A .parquet or .csv with one row per embedding, in order: the image's "
            "name from image_path, filename, path, key or url; labels from labels or label "
            "(a list, or comma-separated); every other column kept as its metadata."
        ),
    ] = None,
    part: Annotated[
        str | None,
        Form(
            max_length=MAX_PART_NAME,
            description="The part's name (default: the SHA-256 of the embeddings); a part "
            "already imported is refused with 409, so a resumed import skips it.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        Form(description="The model that made the embeddings; refused unless the collection's."),
    ] = None,
    callback_url: Annotated[
        str | None, Form(description="POSTed the final Job (signed, Standard Webhooks).")
    ] = None,
) -> Job:
    """Import precomputed embeddings as images of the collection, searchable like ingested
    ones (without pictures or crops). The job's progress counts rows."""
    collection = await existing(collections, collection_id, submitter.owner)
    callback = await submitter.callback(callback_url)
    served = next(
        (m for m in (await store.served_models())[1] if same_model(m.id, collection.model)), None
    )
    if model and not (
        same_model(model, collection.model) or (served and same_model(model, served.model))
    ):
        raise InvalidInput.for_field(
            "model", f"the collection holds embeddings of {collection.model!r}, not {model!r}"
        )
    data = await embeddings.read()
    header = read_npy_header(data, "embeddings")
    dim = await collections.embedding_dim(collection_id) or (served.embedding_dim if served else 0)
    if dim and header.dim != dim:
        raise InvalidInput.for_field(
            "embeddings",
            f"holds {header.dim}-d embeddings; the collection's model "
            f"{collection.model!r} makes {dim}-d",
        )
    digest = await to_thread.run_sync(_sha256, data)  # 48 MB: 0.1 s off the event loop
    name = part or digest
    done = (await collections.imported_parts(collection_id)).get(name)
    if done is not None:
        raise Conflict(
            f"part {name!r} is imported already ({done['rows']} images from row "
            f"{done['first_row']}); GET /v1/collections/{collection_id}/embeddings lists the parts"
        )
    quota = settings.max_images_per_tenant
    if await collections.stored_images(submitter.owner) + header.rows > quota:
        raise QuotaExceeded(
            f"this API key may store {quota} images (CLIPQ_MAX_IMAGES_PER_TENANT); the part's "
            f"{header.rows} do not fit"
        )
    uploads = [_upload(embeddings.filename or "embeddings.npy", data, digest)]
    if metadata is not None:
        filename = metadata.filename or ""
        if not filename.lower().endswith(METADATA_SUFFIXES):
            raise InvalidInput.for_field("metadata", "must be a .parquet or .csv file")
        table = await metadata.read()
        uploads.append(_upload(filename, table, await to_thread.run_sync(_sha256, table)))
    payload = ImportPayload(
        collection_id=collection_id,
        part=name,
        embeddings=uploads[0].ref,
        metadata=uploads[1].ref if metadata is not None else None,
        rows=header.rows,
        dim=header.dim,
    )
    job = await submitter.submit(payload, uploads, header.rows, callback, model=collection.model)
    return accepted(response, job)


@router.get(
    "/{collection_id}/embeddings",
    response_model=ImportedParts,
    responses=problems(401, 404, 422),
)
async def list_imported_parts(
    collection_id: str, collections: CollectionsDep, owner: OwnerDep
) -> ImportedParts:
    """The parts imported so far: what a resumed import skips."""
    await existing(collections, collection_id, owner)
    parts = await collections.imported_parts(collection_id)
    return ImportedParts(parts=[ImportedPart(part=k, **v) for k, v in parts.items()])


def _upload(filename: str, data: bytes, sha256: str) -> AcceptedUpload:
    return AcceptedUpload(ImageRef(sha256=sha256, filename=filename[-200:]), data)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
