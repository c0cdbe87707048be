"""Zero-shot classification jobs: the client's images against the client's labels."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile

from api.deps import SettingsDep, require_multipart
from api.jobs import SubmitterDep, accepted
from api.openapi import problems
from api.uploads import accept_uploads
from clipcore.contracts import ClassifyPayload, Job
from clipcore.errors import InvalidInput

router = APIRouter(prefix="/v1", tags=["classify"])

DEFAULT_TEMPLATE = "a photo of a {}."
MAX_LABEL_LENGTH = 200


def clean_labels(labels: list[str], max_labels: int) -> list[str]:
    """Trimmed labels; refuse none, empty, duplicate or too many, naming the culprit."""
    if not labels:
        raise InvalidInput.for_field("labels", "at least one label is required")
    if len(labels) > max_labels:
        raise InvalidInput.for_field("labels", f"{len(labels)} labels is more than {max_labels}")
    cleaned, seen = [], set()
    for index, raw in enumerate(labels):
        label = raw.strip()
        if not label:
            raise InvalidInput.for_field(f"labels[{index}]", "a label must not be empty")
        if len(label) > MAX_LABEL_LENGTH:
            raise InvalidInput.for_field(
                f"labels[{index}]", f"a label is at most {MAX_LABEL_LENGTH} characters"
            )
        if label in seen:
            raise InvalidInput.for_field(f"labels[{index}]", f"duplicate label {label!r}")
        seen.add(label)
        cleaned.append(label)
    return cleaned


def check_template(template: str) -> str:
    if template.count("{}") != 1:
        raise InvalidInput.for_field(
            "prompt_template", "must contain '{}' exactly once, where the label goes"
        )
    return template


@router.post(
    "/classify",
    status_code=202,
    dependencies=[Depends(require_multipart)],
    response_model=Job,
    responses=problems(400, 401, 413, 415, 422, 429, 503),
)
async def create_classify_job(
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    images: Annotated[list[UploadFile], File(description="The images to classify.")],
    labels: Annotated[list[str], Form(description="The label set, 1 to 1,000 labels.")],
    prompt_template: Annotated[
        str, Form(max_length=300, description="Prompt for each label; '{}' is the label.")
    ] = DEFAULT_TEMPLATE,
    top_k: Annotated[int, Form(ge=1, le=1000, description="Labels returned per image.")] = 5,
    callback_url: Annotated[
        str | None, Form(description="POSTed the final Job (signed, Standard Webhooks).")
    ] = None,
) -> Job:
    """Classify images against your labels. Answers 202 at once; poll the job for the result."""
    callback = await submitter.callback(callback_url)
    payload_labels = clean_labels(labels, settings.max_labels)
    template = check_template(prompt_template)
    uploads = await accept_uploads(images, settings)
    payload = ClassifyPayload(
        images=[upload.ref for upload in uploads],
        labels=payload_labels,
        prompt_template=template,
        top_k=min(top_k, len(payload_labels)),
    )
    job = await submitter.submit(payload, uploads, len(uploads), callback)
    return accepted(response, job)
