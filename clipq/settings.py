"""The one configuration object of every clipq process (API, worker, CLI).

Every value comes from the environment with the prefix ``CLIPQ_`` (or a
``.env`` file); nothing else in clipq hard-codes a URL, a path or a limit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clipcore.images import DEFAULT_BATCH_PIXELS
from clipcore.model_names import model_key
from clipcore.plans.schemas import HygieneThresholds


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPQ_", env_file=".env", extra="ignore")

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis holding the queue, uploads, job records and results.",
    )
    clip_model: str = Field(
        "embedded",
        description="The model this worker serves, as a model string: 'embedded' (the CLIP "
        "shipped in clipcore), 'hf:<hub id or folder>' (transformers' CLIP, SigLIP or "
        "SigLIP2), 'open_clip:<hf-hub:org/repo | local-dir:folder | Arch/tag>', or a bare hub "
        "id or folder. It takes the jobs of its own queue (clipq.inference.<model>).",
    )
    models: str = Field(
        "",
        description="The models this deployment serves, comma-separated, the default first "
        "(e.g. 'embedded,hf:openai/clip-vit-base-patch32'): a job or collection may name one "
        "('model'), and is queued for the workers whose CLIPQ_CLIP_MODEL it is. Empty: "
        "CLIPQ_CLIP_MODEL alone.",
    )
    clip_runtime: Literal["auto", "torch", "onnx", "onnx-int8", "openvino"] = Field(
        "auto",
        description="What runs the model's towers on a CPU: 'auto' (ONNX Runtime on a CPU, "
        "torch on a GPU), 'torch', 'onnx' (ONNX Runtime, fp32), 'onnx-int8' (dynamic int8, used "
        "only where its measured agreement with fp32 holds, else fp32) or 'openvino' (fp32). "
        "Each tower is exported once per model into CLIPQ_ONNX_DIR while the worker loads it. "
        "A GPU worker runs torch whatever this says.",
    )
    device_decode: bool = Field(
        True,
        description="A GPU worker decodes JPEG uploads in batches on the GPU (nvJPEG) and "
        "resizes and normalises every upload there; false: Pillow on the CPU, as a CPU "
        "worker always does.",
    )
    onnx_dir: str = Field(
        "",
        description="Where ONNX exports of the CLIP towers are kept; empty: "
        "~/.cache/clipq/onnx (compose: in the model-cache volume).",
    )
    clip_domain_reference: str = Field(
        "",
        description="Folder with the CLIP's domain reference (domain.json + "
        "reference.safetensors, made by python -m clipcore.domain), for the per-image "
        "'in_domain' check. Empty: the model folder's own (the embedded model has one); "
        "a hub CLIP without one gets no domain check.",
    )
    detector_model: str = Field(
        "auto",
        description="Mask R-CNN for crop proposals: 'auto' (the embedded detector beside the "
        "embedded CLIP, 'torchvision:COCO_V1' beside any other), 'embedded', "
        "'torchvision:COCO_V1' (maskrcnn_resnet50_fpn_v2 weights), a folder (config.json + "
        "model.safetensors) or a .pth.",
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
    max_batch_pixels: int = Field(
        DEFAULT_BATCH_PIXELS,
        ge=1,
        description="Most decoded pixels one batch holds at once, after each image is reduced "
        "to what the models need as it is decoded; past it, the images decoded so far are "
        "pre-processed (or detected) before more are decoded.",
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
    max_queued_jobs_per_tenant: int = Field(
        2_000,
        ge=1,
        description="Unfinished (queued or running) jobs of one API key past which its new jobs "
        "get 429 with Retry-After, so that one tenant cannot fill the queue.",
    )
    max_collections_per_tenant: int = Field(
        1_000, ge=1, description="Collections one API key may hold (403 past it)."
    )
    max_images_per_tenant: int = Field(
        1_000_000,
        ge=1,
        description="Images one API key may store across its collections (403 past it).",
    )
    max_queries: int = Field(
        1_000,
        ge=1,
        le=10_000,
        description="Most queries of one evaluation, whether sent or made from the collection's "
        "labels.",
    )
    max_waits_per_tenant: int = Field(
        64,
        ge=1,
        description="Long-polls (?wait=N) and synchronous /api requests of one API key that may "
        "wait at once in one API process (429 past it).",
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
    plan_pairs_per_image: int = Field(
        30, ge=1, le=200, description="A plan's k nearest neighbours per image, unless it asks."
    )
    plan_window: int = Field(
        20, ge=0, le=200, description="A plan's sequential window, unless it asks."
    )
    plan_blur_review: float = Field(
        0.3, ge=0, le=1, description="Blurry below this share of the dataset's median sharpness."
    )
    plan_blur_drop: float = Field(
        0.15, ge=0, le=1, description="Suggest dropping below this share of the median sharpness."
    )
    plan_clipped_share: float = Field(
        0.25, ge=0, le=1, description="Over/under-exposed above this share of clipped pixels."
    )
    plan_min_side: int = Field(480, ge=0, description="Low resolution below this shorter side.")
    plan_duplicate_similarity: float = Field(
        0.92, ge=0, le=1, description="Near-duplicates at or above this thumbnail correlation."
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
    index_exact_below: int = Field(
        100_000,
        ge=256,
        description="A collection with this many images is searched (with its crops) through "
        "an approximate FAISS index (IVF + fast-scan PQ, refined from fp16) instead of an exact "
        "scan (bench/ann_index.py).",
    )
    index_dir: str = Field(
        "",
        description="A folder (a volume shared by a host's workers) where approximate indexes "
        "are saved and memory-mapped from; empty: each worker trains its own in memory.",
    )
    vector_dir: str = Field(
        "",
        description="A folder (a volume shared by every worker) where new collections keep "
        "their embedding rows, memory-mapped, instead of in Redis (1 KB an image of Redis "
        "memory at 512 dimensions); empty: in Redis.",
    )
    ingest_roots: str = Field(
        "",
        description="Comma-separated local folders that imports by reference may read "
        "(POST /v1/collections/{id}/imports with file paths or file:// URLs); a path outside "
        "them, through symlinks too, is refused. Empty: local files are refused, so that a "
        "tenant cannot read the worker's filesystem.",
    )
    ingest_schemes: str = Field(
        "http,https",
        description="Comma-separated remote schemes imports by reference may read through "
        "fsspec (add 's3,gs' for buckets, read with the worker's own credentials); empty: none.",
    )
    ingest_allow_hosts: str = Field(
        "",
        description="Comma-separated hosts or CIDRs that http(s) sources may reach although "
        "private or loopback (e.g. '127.0.0.1,10.0.0.0/8'); others must be public.",
    )
    ingest_max_shard_bytes: int = Field(
        16 * 1024**3, ge=1, description="Largest tar shard an import reads (it fails past it)."
    )
    ingest_max_image_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="Largest image file or tar member an import reads."
    )
    ingest_timeout_seconds: float = Field(
        60,
        gt=0,
        description="An http(s) source that does not connect, or sends nothing for this long, "
        "fails (its shard or image).",
    )
    ingest_max_shards: int = Field(
        100_000, ge=1, description="Most shard jobs one import is split into (422 past it)."
    )
    shards: int = Field(
        1,
        ge=1,
        le=64,
        description="Shards every collection's searches are split into: a search fans out to "
        "one worker of each queue clipq.shard.N (CLIPQ_WORKER_SHARD), and the last part to "
        "finish merges the parts.",
    )
    shard_block_rows: int = Field(
        65_536,
        ge=1,
        description="Image rows dealt to shards at a time, round-robin: row r is shard "
        "(r // this) % CLIPQ_SHARDS.",
    )
    worker_shard: int = Field(
        -1,
        ge=-1,
        description="The shard this worker holds and searches (start it with -Q "
        "clipq.shard.N); -1: whole collections, from its model's queue (clipq.inference.<model>).",
    )
    index_nprobe: int = Field(
        32, ge=1, le=65_536, description="Inverted lists an approximate search visits."
    )
    index_refine: int = Field(
        100,
        ge=1,
        le=1000,
        description="An approximate search re-scores this many PQ candidates per hit from "
        "the fp16 vectors.",
    )
    index_after_import_s: float = Field(
        5.0,
        ge=0,
        description="Seconds without a new import part after which a worker (each shard's, "
        "sharded) brings the collection's index up to date, so that imports are not slowed by "
        "it and the first search does not build it; 0: the next search does.",
    )
    search_min_score: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="A fixed 'no match' threshold (cosine) for searches that send none. "
        "Unset: each collection sets its own (null prompts, clipcore.search_decision).",
    )
    api_keys: str = Field(
        "",
        description="Comma-separated API keys; when set (or api_key_file is), every /v1 and "
        "/api request needs 'Authorization: Bearer <key>'. Empty: no authentication.",
    )
    api_key_file: str = Field("", description="A file of API keys, one per line (# comments).")
    metrics_key: str = Field(
        "",
        description="When set, GET /metrics needs 'Authorization: Bearer <this key>'; "
        "empty: /metrics is open.",
    )
    server: str = Field(
        "http://127.0.0.1:8080", description="The clipq service the CLI talks to (--server)."
    )
    api_key: str = Field("", description="The API key the CLI sends (--api-key).")
    api_host: str = Field("127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(8080, ge=1, le=65535, description="Port the API listens on.")
    api_workers: int = Field(1, ge=1, description="API server processes.")
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Proxies whose X-Forwarded-For/-Proto headers the API trusts ('*': any).",
    )
    header_timeout_seconds: float = Field(
        10, gt=0, description="A request whose headers are not complete by then is closed (408)."
    )
    request_body_timeout_seconds: float = Field(
        120, gt=0, description="A request body not complete this long after its headers: 408."
    )
    keep_alive_seconds: int = Field(5, ge=1, description="Idle keep-alive connections close.")
    graceful_shutdown_seconds: int = Field(
        30, ge=1, description="On SIGTERM, how long the API lets requests in flight finish."
    )
    redis_max_connections: int = Field(
        100,
        ge=2,
        description="Redis connections of one API process; past them a request waits up to "
        "redis_pool_timeout_seconds for one (long-polls share a single connection).",
    )
    redis_pool_timeout_seconds: float = Field(
        5, gt=0, description="How long a request waits for a free Redis connection (then 503)."
    )
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

    @property
    def served_models(self) -> list[str]:
        """The deployment's models, the default first (CLIPQ_MODELS, else CLIPQ_CLIP_MODEL)."""
        named = [model.strip() for model in self.models.split(",") if model.strip()]
        return named or [self.clip_model]

    def served_model(self, requested: str) -> str | None:
        """The served model a job's ``model`` names ('' for the default); None if none."""
        if not requested.strip():
            return self.served_models[0]
        wanted = model_key(requested)
        return next((m for m in self.served_models if model_key(m) == wanted), None)

    @property
    def plan_thresholds(self) -> HygieneThresholds:
        return HygieneThresholds(
            blur_review=self.plan_blur_review,
            blur_drop=self.plan_blur_drop,
            clipped_share=self.plan_clipped_share,
            min_side=self.plan_min_side,
            duplicate_similarity=self.plan_duplicate_similarity,
        )

    @property
    def resolved_detector_model(self) -> str:
        """The detector to load: 'auto' pairs the embedded CLIP with the embedded detector
        (both know only the generated world) and any other CLIP with COCO Mask R-CNN."""
        if self.detector_model != "auto":
            return self.detector_model
        return "embedded" if self.clip_model in ("", "embedded") else "torchvision:COCO_V1"

    @model_validator(mode="after")
    def _shard_in_range(self) -> Settings:
        if self.worker_shard >= self.shards:
            raise ValueError("CLIPQ_WORKER_SHARD must be below CLIPQ_SHARDS")
        return self

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
