"""Reading and cancelling jobs of every kind."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api.auth import OwnerDep
from api.deps import QueueDep, SettingsDep, StoreDep
from api.jobs import POLL_AFTER_SECONDS
from api.openapi import problems
from clipcore.errors import InvalidInput
from clipq.contracts.jobs import Job
from clipq.errors import Conflict, NotFound
from clipq.metrics import record_cancelled
from clipq.store.jobs import CancelOutcome

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(description="The id returned when the job was submitted.")]


def _unknown(job_id: str) -> NotFound:
    return NotFound(f"no job {job_id!r}: it never existed or its results have expired")


@router.get("/{job_id}", response_model=Job, responses=problems(401, 404, 422, 429))
async def get_job(
    job_id: JobId,
    store: StoreDep,
    settings: SettingsDep,
    owner: OwnerDep,
    response: Response,
    wait: Annotated[
        float,
        Query(ge=0, description="Seconds to wait for the job to finish before answering."),
    ] = 0,
) -> Job:
    """The job's status, progress and — once it has succeeded — its typed result."""
    if wait > settings.api_wait_max_seconds:
        raise InvalidInput.for_field("wait", f"at most {settings.api_wait_max_seconds} seconds")
    if wait:
        async with store.events.slot(owner):
            job = await store.wait_for_final(job_id, wait, owner)
    else:
        job = await store.get_job(job_id, owner)
    if job is None:
        raise _unknown(job_id)
    if not job.status.is_final:
        response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    return job


@router.delete("/{job_id}", response_model=Job, responses=problems(401, 404, 409, 422))
async def cancel_job(job_id: JobId, store: StoreDep, queue: QueueDep, owner: OwnerDep) -> Job:
    """Cancel a queued or running job; a running one stops after its current batch."""
    if await store.get_job(job_id, owner) is None:
        raise _unknown(job_id)
    outcome = await store.cancel_job(job_id)
    job = await store.get_job(job_id, owner)
    if outcome == CancelOutcome.unknown or job is None:
        raise _unknown(job_id)
    if outcome == CancelOutcome.final:
        raise Conflict(f"job {job_id} has already finished ({job.status})")
    await record_cancelled(store.redis, str(job.kind))
    if await store.callback_url(job_id):
        await queue.notify(job_id)
    return job
