"""Reading a job's uploads and checking each before the job is accepted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial

from anyio import to_thread
from fastapi import UploadFile

from clipcore.errors import InvalidInput
from clipcore.images import check_filename, inspect_image
from clipq.contracts.jobs import ImageRef
from clipq.settings import Settings


@dataclass(frozen=True)
class AcceptedUpload:
    ref: ImageRef
    data: bytes


async def accept_uploads(
    files: list[UploadFile], settings: Settings, field: str = "images"
) -> list[AcceptedUpload]:
    """Read and inspect every file; refuse the whole request naming the first bad one."""
    if not files:
        raise InvalidInput.for_field(field, "at least one image is required")
    if len(files) > settings.max_files_per_job:
        raise InvalidInput.for_field(
            field, f"{len(files)} images is more than the {settings.max_files_per_job} allowed"
        )
    accepted = []
    for index, file in enumerate(files):
        filename = check_filename(file.filename, index, field)
        data = await file.read()
        # Pillow parses headers synchronously; keep the event loop free meanwhile.
        await to_thread.run_sync(
            partial(
                inspect_image,
                data,
                filename,
                max_pixels=settings.max_image_pixels,
                field=f"{field}[{index}]",
            )
        )
        ref = ImageRef(sha256=hashlib.sha256(data).hexdigest(), filename=filename)
        accepted.append(AcceptedUpload(ref, data))
    return accepted
