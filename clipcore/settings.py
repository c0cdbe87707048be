"""The one configuration object of every clipq process (API, worker, CLI).

Every value comes from the environment with the prefix ``CLIPQ_`` (or a
``.env`` file); nothing else in clipq hard-codes a URL, a path or a limit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPQ_", env_file=".env", extra="ignore")

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis holding the queue, uploads, job records and results.",
    )
    clip_model: str = Field(
        "embedded",
        description="CLIP to load: 'embedded' (the model shipped in clipcore), a Hugging Face "
        "hub id such as 'openai/clip-vit-base-patch32', or a local folder.",
    )
    detector_model: str = Field(
        "embedded",
        description="Mask R-CNN for crop proposals: 'embedded', 'torchvision:COCO_V1' "
        "(maskrcnn_resnet50_fpn_v2 weights), a folder (config.json + model.safetensors) or a .pth.",
    )
    device: Literal["auto", "cpu", "cuda"] | str = Field(
        "auto", description="Torch device for the worker; 'auto' is cuda when available."
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Images per forward pass.")
    batch_wait_ms: float = Field(
        10,
        ge=0,
        le=1000,
        description="Cross-job batching: how long a worker starting a small classify or scenes "
        "job keeps gathering other queued small jobs into the same model batch (at most "
        "batch_size images). A job with no other job queued starts at once; 0 claims only "
        "what is queued already.",
    )
    max_upload_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Largest request body the API accepts (413 past it)."
    )
    max_files_per_job: int = Field(500, ge=1, description="Most images in one job.")
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="Largest width × height of one image (decompression bombs)."
    )
    max_labels: int = Field(1000, ge=1, description="Most labels in one classification job.")
    job_ttl_seconds: int = Field(
        86_400, ge=1, description="How long uploads, job records and results are kept."
    )
    job_lease_seconds: float = Field(
        30,
        gt=0,
        description="A running job whose worker sent no heartbeat for this long is re-queued.",
    )
    max_attempts: int = Field(
        3, ge=1, description="Starts of a job (after worker deaths) before it is failed."
    )
    max_queued_jobs: int = Field(
        10_000, ge=1, description="Queue depth past which new jobs get 429 with Retry-After."
    )
    task_soft_time_limit: int = Field(
        600, ge=1, description="Seconds before a task is asked to stop (it fails cleanly)."
    )
    task_time_limit: int = Field(660, ge=1, description="Seconds before a task is killed.")
    api_wait_max_seconds: float = Field(
        30.0, ge=0, description="Longest long-poll a client may ask for with ?wait=N."
    )
    scene_min_confidence: float = Field(
        0.5, ge=0, le=1, description="A scene below this probability is flagged 'uncertain'."
    )
    scene_min_margin: float = Field(
        0.1, ge=0, le=1, description="A lead over the second scene below this is 'uncertain'."
    )
    sync_timeout_seconds: float = Field(
        300, gt=0, description="How long the seed-compatible /api endpoints wait for their job."
    )
    crops_per_image: int = Field(8, ge=0, le=100, description="Most region crops kept per image.")
    crop_min_score: float = Field(
        0.5, ge=0, le=1, description="Smallest detector score of a region that gets a crop."
    )
    crop_context: float = Field(
        2.0, ge=1, le=8, description="A crop's side as a multiple of its box's longer side."
    )
    search_min_score: float = Field(
        0.45, ge=-1, le=1, description="Default 'no match' threshold of a search (cosine)."
    )
    api_keys: str = Field(
        "",
        description="Comma-separated API keys; when set (or api_key_file is), every /v1 and "
        "/api request needs 'Authorization: Bearer <key>'. Empty: no authentication.",
    )
    api_key_file: str = Field("", description="A file of API keys, one per line (# comments).")
    webhook_secret: str = Field(
        "",
        description="Standard Webhooks signing secret ('whsec_' + base64), for callback_url.",
    )
    webhook_allow: str = Field(
        "",
        description="Comma-separated hosts or CIDRs that callbacks may reach although private "
        "or loopback (e.g. '127.0.0.1,10.0.0.0/8'); others must be public.",
    )
    webhook_timeout_seconds: float = Field(
        5,
        gt=0,
        description="The whole deadline of one delivery attempt: connecting, sending, the status "
        "line and the headers (the answer's body is not read). A warm shutdown of the delivery "
        "worker waits at most this long.",
    )
    webhook_dns_timeout_seconds: float = Field(
        2,
        gt=0,
        description="How long the API waits for a callback_url's host to resolve (a 422 past it).",
    )
    webhook_max_retries: int = Field(
        10, ge=0, description="Delivery retries, with exponential backoff up to 5 minutes apart."
    )
    fault_oom_above_batch: int = Field(
        -1,
        ge=-1,
        description="Testing only: raise CUDA out-of-memory for image batches larger than this "
        "(-1: off, 0: always).",
    )
    preload_model: bool = Field(
        True, description="Load the model when a worker process starts, not on its first job."
    )

    @model_validator(mode="after")
    def _hard_limit_after_soft(self) -> Settings:
        if self.task_time_limit <= self.task_soft_time_limit:
            raise ValueError(
                "CLIPQ_TASK_TIME_LIMIT must exceed CLIPQ_TASK_SOFT_TIME_LIMIT, so that a slow "
                "job can fail cleanly before it is killed"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
