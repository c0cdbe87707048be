"""Submitting jobs: shared by every job-creating endpoint.

A submission claims its ``Idempotency-Key`` (the same key and request give back
the same job; the same key with another request is a 422), takes a place in
the queue (429 with ``Retry-After`` when ``CLIPQ_MAX_QUEUED_JOBS`` are
waiting), stores the uploads and the job record, and enqueues the task by name.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Header, Response
from kombu.exceptions import KombuError
from redis import RedisError
from redis.exceptions import OutOfMemoryError

from api.auth import OwnerDep
from api.deps import QueueDep, SettingsDep, StoreDep
from api.uploads import AcceptedUpload
from clipcore.errors import InvalidInput
from clipq.contracts.jobs import Job, JobKind, JobPayload
from clipq.errors import Conflict, ServiceUnavailable, StoreOutOfMemory, TooManyRequests
from clipq.metrics import record_submit
from clipq.webhooks import check_callback_url

POLL_AFTER_SECONDS = 1
QUEUE_FULL_RETRY_SECONDS = 10
MAX_IDEMPOTENCY_KEY = 255


class IdempotencyMismatch(InvalidInput):
    slug = "idempotency-key-reused"
    title = "Idempotency-Key reused with a different request"


class JobSubmitter:
    """Everything a job-creating endpoint needs, bound to the request."""

    def __init__(
        self,
        store: StoreDep,
        queue: QueueDep,
        settings: SettingsDep,
        owner: OwnerDep,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                max_length=MAX_IDEMPOTENCY_KEY,
                description="Retry-safe submissions: the same key and request give the same job.",
            ),
        ] = None,
    ) -> None:
        self.store, self.queue, self.settings, self.owner = store, queue, settings, owner
        self.idempotency_key = idempotency_key

    async def callback(self, url: str | None) -> str:
        """A checked callback URL ('' for none); its DNS lookup does not block the event loop."""
        if not url:
            return ""
        if not self.settings.webhook_secret:
            raise InvalidInput.for_field(
                "callback_url", "webhooks are not configured on this service (CLIPQ_WEBHOOK_SECRET)"
            )
        return await check_callback_url(
            url,
            self.settings.webhook_allow,
            resolve_within=self.settings.webhook_dns_timeout_seconds,
        )

    async def submit(
        self,
        payload: JobPayload,
        uploads: Sequence[AcceptedUpload],
        total: int,
        callback_url: str = "",
        *,
        model: str,
    ) -> Job:
        """Store and queue the job for the workers of ``model`` (a served model string)."""
        job_id = uuid.uuid4().hex
        key = self.idempotency_key
        if key:
            fingerprint = hashlib.sha256(
                "\n".join((payload.model_dump_json(), callback_url, model)).encode()
            ).hexdigest()
            earlier = await self.store.claim_idempotency_key(self.owner, key, job_id, fingerprint)
            if earlier is not None:
                return await self._replay(*earlier, fingerprint)
        try:
            return await self._create(job_id, payload, uploads, total, callback_url, model)
        except BaseException:
            if key:  # nothing was accepted: the key stays free for a retry
                await self.store.release_idempotency_key(self.owner, key)
            raise

    async def _replay(self, job_id: str, fingerprint: str, current: str) -> Job:
        if fingerprint != current:
            raise IdempotencyMismatch.for_field(
                "Idempotency-Key", "was used before with a different request"
            )
        job = await self.store.get_job(job_id, self.owner)
        if job is None:
            raise Conflict("a request with this Idempotency-Key is still being accepted; retry")
        return job

    async def _create(
        self,
        job_id: str,
        payload: JobPayload,
        uploads: Sequence[AcceptedUpload],
        total: int,
        callback_url: str,
        model: str,
    ) -> Job:
        settings = self.settings
        reserved = await self.store.reserve_queue_place(
            job_id, self.owner, settings.max_queued_jobs, settings.max_queued_jobs_per_tenant
        )
        if reserved == 0:
            raise TooManyRequests(
                f"{settings.max_queued_jobs} jobs are waiting; try again later",
                headers={"Retry-After": str(QUEUE_FULL_RETRY_SECONDS)},
            )
        if reserved < 0:
            raise TooManyRequests(
                f"this API key has {settings.max_queued_jobs_per_tenant} unfinished jobs "
                "(CLIPQ_MAX_QUEUED_JOBS_PER_TENANT); wait for some to finish",
                headers={"Retry-After": str(QUEUE_FULL_RETRY_SECONDS)},
            )
        blobs = {upload.ref.sha256: upload.data for upload in uploads}
        try:
            job = await self.store.create_job(
                job_id,
                payload,
                blobs.items(),
                total,
                owner=self.owner,
                callback_url=callback_url,
                model=model,
            )
            await self.queue.enqueue(JobKind(payload.kind), job_id, model)
        except BaseException as exc:
            # The client hears of a failure, so nothing of this job may stay behind.
            await self.store.discard_job(job_id, self.owner)
            if isinstance(exc, OutOfMemoryError):
                raise StoreOutOfMemory() from exc
            if isinstance(exc, KombuError | RedisError | OSError):
                detail = f"the job could not be queued ({exc.__class__.__name__})"
                raise ServiceUnavailable(detail) from exc
            raise
        await record_submit(self.store.redis, str(payload.kind))
        return job


SubmitterDep = Annotated[JobSubmitter, Depends()]


def accepted(response: Response, job: Job) -> Job:
    """Headers of a 202: where to poll, and how soon."""
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    return job
