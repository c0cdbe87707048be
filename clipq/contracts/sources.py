"""Imports by reference: a collection fed from webdataset shards, image files or URLs that the
workers read themselves (pydantic only).

An import is a job (``source_import``) that a worker splits into shard jobs
(``source_shard``), one per tar shard or per ``files_per_shard`` files or URLs; any number of
workers take the shard jobs from the queue, each under its own lease, and the shard that
ends last answers the import. No image's bytes pass through the API or Redis.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from clipcore.problem import Problem

MAX_REFERENCES = 10_000  # patterns, paths or URLs in one request (a pattern expands further)
MAX_REFERENCE_LENGTH = 2_000


Reference = Annotated[str, Field(min_length=1, max_length=MAX_REFERENCE_LENGTH)]


class SourceKind(StrEnum):
    webdataset = "webdataset"
    files = "files"
    urls = "urls"


class LabelsFrom(StrEnum):
    """Where a sample's labels come from (its caption always goes into its metadata)."""

    json = "json"  # the sample's .json 'labels' (a list) or 'label' (a string)
    caption = "caption"  # the sample's .txt, as one label (at most 200 characters)
    none = "none"


class WebDatasetSource(BaseModel):
    """Tar shards as img2dataset writes them: ``key.jpg`` with ``key.txt`` (its caption) and
    ``key.json`` (its metadata) beside it."""

    kind: Literal[SourceKind.webdataset]
    shards: list[Reference] = Field(
        min_length=1,
        max_length=MAX_REFERENCES,
        description="Shard paths or URLs, each possibly brace-expanded "
        "('/data/shards/{00000..00127}.tar', 's3://bucket/{a,b}.tar'): one shard job each.",
    )


class FilesSource(BaseModel):
    """Image files, or folders of them (read recursively); a ``name.txt`` or ``name.json``
    beside an image is its caption or metadata, as in a shard."""

    kind: Literal[SourceKind.files]
    paths: list[Reference] = Field(min_length=1, max_length=MAX_REFERENCES)
    files_per_shard: int = Field(1000, ge=1, le=100_000, description="Images per shard job.")


class UrlsSource(BaseModel):
    """http(s) URLs of images (other schemes where the deployment allows them)."""

    kind: Literal[SourceKind.urls]
    urls: list[Reference] = Field(min_length=1, max_length=MAX_REFERENCES)
    files_per_shard: int = Field(1000, ge=1, le=100_000, description="Images per shard job.")


ImportSource = Annotated[WebDatasetSource | FilesSource | UrlsSource, Field(discriminator="kind")]


class SourceOptions(BaseModel):
    labels: LabelsFrom = LabelsFrom.json
    crops: bool = Field(
        True,
        description="Region crops (CLIPQ_CROPS_PER_IMAGE) for crop reranking; false: the "
        "image embedding alone, without running the detector.",
    )


class SourceImportRequest(SourceOptions):
    source: ImportSource
    callback_url: str | None = Field(
        None, description="POSTed the final Job (signed, Standard Webhooks)."
    )


class SourceImportPayload(SourceOptions):
    kind: Literal["source_import"] = "source_import"
    collection_id: str
    source: ImportSource


class ShardSpec(BaseModel):
    """One shard job's share of an import: a tar shard, or a list of image files or URLs."""

    name: str = Field(
        description="What the collection remembers it by: the tar's URL, or a list's first "
        "file and its length."
    )
    webdataset: bool
    urls: list[str]
    sidecars: list[str] = Field(
        default_factory=list, description="Captions (.txt) and metadata (.json) beside files."
    )


class SourceShardPayload(SourceOptions):
    kind: Literal["source_shard"] = "source_shard"
    collection_id: str
    parent: str = Field(description="The import's job id.")
    shard: int
    spec: ShardSpec


class SampleError(BaseModel):
    sample: str
    error: Problem


MAX_SAMPLE_ERRORS = 20  # kept in a shard's result; the counts say how many there were


class SourceShardResult(BaseModel):
    kind: Literal["source_shard"] = "source_shard"
    collection_id: str
    shard: int
    name: str
    read: int = Field(description="Samples read from the shard.")
    added: int
    duplicates: int = Field(
        description="Already in the collection (by SHA-256), skipped before decoding: sent "
        "before, twice in the source, or appended by an attempt of this shard whose worker "
        "died (so 'added' may count fewer than the shard brought; image_count is exact)."
    )
    failed: int
    skipped: bool = Field(
        False, description="The shard had been imported into the collection before: not read."
    )
    errors: list[SampleError] = Field(
        default_factory=list, description=f"The first {MAX_SAMPLE_ERRORS} samples that failed."
    )


class SourceImportResult(BaseModel):
    kind: Literal["source_import"] = "source_import"
    collection_id: str
    shards: int
    shards_skipped: int = Field(description="Imported before (a re-run of the same import).")
    shards_failed: int
    added: int
    duplicates: int
    failed: int
    image_count: int
