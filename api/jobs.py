"""Submitting jobs and answering for them: shared by every job-creating endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from fastapi import Response
from kombu.exceptions import KombuError
from redis import RedisError

from api.queue import JobQueue
from api.store import ApiStore
from api.uploads import AcceptedUpload
from clipcore.contracts import Job, JobPayload
from clipcore.errors import ServiceUnavailable

POLL_AFTER_SECONDS = 1


async def submit_job(
    store: ApiStore,
    queue: JobQueue,
    payload: JobPayload,
    uploads: Sequence[AcceptedUpload],
    total: int,
) -> Job:
    """Store the uploads and the job record, then enqueue the job's task by name."""
    job_id = uuid.uuid4().hex
    blobs = {upload.ref.sha256: upload.data for upload in uploads}
    job = await store.create_job(job_id, payload, blobs.items(), total)
    try:
        await queue.enqueue(payload.kind, job_id)
    except (KombuError, RedisError, OSError) as exc:
        error = ServiceUnavailable(f"the job could not be queued ({exc.__class__.__name__})")
        await store.fail_job(job_id, error.to_problem())
        raise error from exc
    return job


def accepted(response: Response, job: Job) -> Job:
    """Headers of a 202: where to poll, and how soon."""
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    return job
