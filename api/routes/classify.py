"""Zero-shot classification jobs: the client's images against the client's labels."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile

from api.deps import SettingsDep, require_multipart
from api.forms import MODEL_FIELD, clean_labels, served_model
from api.jobs import SubmitterDep, accepted
from api.openapi import problems
from api.uploads import accept_uploads
from clipcore.prompts import DEFAULT_TEMPLATE, Label, PromptTemplate
from clipq.contracts.jobs import ClassifyPayload, Job

router = APIRouter(prefix="/v1", tags=["classify"])


@router.post(
    "/classify",
    status_code=202,
    dependencies=[Depends(require_multipart)],
    response_model=Job,
    responses=problems(400, 401, 413, 415, 422, 429, 503, 507),
)
async def create_classify_job(
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    images: Annotated[list[UploadFile], File(description="The images to classify.")],
    labels: Annotated[list[Label], Form(description="The label set, 1 to 1,000 labels.")],
    prompt_template: Annotated[
        PromptTemplate, Form(description="Prompt for each label; '{}' is the label.")
    ] = DEFAULT_TEMPLATE,
    top_k: Annotated[int, Form(ge=1, le=1000, description="Labels returned per image.")] = 5,
    callback_url: Annotated[
        str | None, Form(description="POSTed the final Job (signed, Standard Webhooks).")
    ] = None,
    model: Annotated[str | None, Form(description=MODEL_FIELD)] = None,
) -> Job:
    """Classify images against your labels. Answers 202 at once; poll the job for the result.

    Probabilities are the model's own: a CLIP's softmax over your labels (they sum to 1),
    a SigLIP's sigmoid per label (each on its own; none, one or several may be likely)."""
    runs_on = served_model(settings, model)
    callback = await submitter.callback(callback_url)
    payload_labels = clean_labels(labels, settings.max_labels)
    uploads = await accept_uploads(images, settings)
    payload = ClassifyPayload(
        images=[upload.ref for upload in uploads],
        labels=payload_labels,
        prompt_template=prompt_template,
        top_k=min(top_k, len(payload_labels)),
    )
    job = await submitter.submit(payload, uploads, len(uploads), callback, model=runs_on)
    return accepted(response, job)
