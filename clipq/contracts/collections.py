"""Schemas of image collections, search and evaluation (pydantic only).

Requests are what clients send; payloads what a task needs besides stored
data; results what a job returns. Boxes are ``[x0, y0, x1, y1]`` in the
original image's pixels.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from clipcore.errors import InvalidInput
from clipcore.problem import Problem
from clipcore.prompts import (
    DEFAULT_TEMPLATE,
    MAX_LABEL_LENGTH,
    Label,
    PromptTemplate,
    Query,
    format_prompt,
)
from clipcore.schemas import Box, CropBackground, Fusion, Region, RerankMode

DEFAULT_KS = [1, 5, 10]
MAX_QUERIES = 10_000  # in any deployment; CLIPQ_MAX_QUERIES may set a lower limit


# --- collections ---------------------------------------------------------------------


class ImageRef(BaseModel):
    """An uploaded image: its content address in Redis and the client's filename."""

    sha256: str
    filename: str


class CollectionCreate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    crop_background: CropBackground = CropBackground.keep
    model: str | None = Field(
        None,
        max_length=500,
        description="The model the collection is bound to, one of GET /v1/models; default: "
        "the deployment's first.",
    )


class Collection(BaseModel):
    id: str
    name: str
    model: str = Field(
        description="The model whose embeddings the collection holds; its jobs run on it."
    )
    image_count: int
    version: int = Field(description="Grows with every change; caches compare it.")
    created_at: datetime
    crop_background: CropBackground


class CollectionImage(BaseModel):
    id: str
    filename: str
    sha256: str
    labels: list[str]
    metadata: dict[str, Any]
    width: int
    height: int
    regions: list[Region]
    thumbnail_url: str | None = Field(
        description="None for an image imported as an embedding only (no picture)."
    )


class ImageLabels(BaseModel):
    """An image's labels, all of them: what it carries from now on."""

    labels: list[Label] = Field(
        description="Each at most 200 characters; duplicates count once; at most "
        "CLIPQ_MAX_LABELS. Empty: the image carries none."
    )


class CollectionImagePage(BaseModel):
    total: int
    images: list[CollectionImage]


# --- ingest ----------------------------------------------------------------------------


class IngestItem(BaseModel):
    sha256: str
    filename: str
    labels: list[Label] = []
    metadata: dict[str, Any] = {}


class IngestPayload(BaseModel):
    kind: Literal["ingest"] = "ingest"
    collection_id: str
    images: list[IngestItem]


class IngestStatus(StrEnum):
    added = "added"
    duplicate = "duplicate"
    failed = "failed"


class IngestedImage(BaseModel):
    filename: str
    sha256: str
    image_id: str | None = None
    status: IngestStatus
    regions: int = 0
    error: Problem | None = None


class IngestResult(BaseModel):
    kind: Literal["ingest"] = "ingest"
    collection_id: str
    added: int
    duplicates: int
    failed: int
    images: list[IngestedImage]


# --- bulk import of precomputed embeddings ---------------------------------------------


class ImportPayload(BaseModel):
    """One part of a bulk import: an ``.npy`` of embeddings and, optionally, a Parquet or
    CSV file with one row of metadata per embedding (clip-retrieval's layout)."""

    kind: Literal["import"] = "import"
    collection_id: str
    part: str = Field(description="The part's name; a part is imported once.")
    embeddings: ImageRef
    metadata: ImageRef | None = None
    rows: int
    dim: int


class ImportResult(BaseModel):
    kind: Literal["import"] = "import"
    collection_id: str
    part: str
    imported: int = Field(description="Images added by this part.")
    already_imported: bool = Field(
        False, description="The part had been imported before: nothing was added."
    )
    image_count: int = Field(description="Images in the collection after the part.")


class ImportedPart(BaseModel):
    part: str
    rows: int
    first_row: int = Field(description="The collection row of the part's first image.")


class ImportedParts(BaseModel):
    parts: list[ImportedPart] = Field(description="Parts imported so far, in import order.")


# --- search ----------------------------------------------------------------------------


class SearchOptions(BaseModel):
    """How a search ranks and when it answers 'no match', whatever the query is."""

    top_k: int = Field(10, ge=1, le=1000)
    rerank: RerankMode = RerankMode.none
    fusion: Fusion = Fusion.max
    crop_weight: float = Field(0.5, ge=0, le=1, description="For fusion=weighted.")
    min_score: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Below this best score (cosine) the answer is 'no match'. Unset: for "
        "text, the collection's own threshold, from how well unrelated text scores in it; "
        "for images, no threshold.",
    )
    callback_url: str | None = Field(
        None, description="POSTed the final Job (signed, Standard Webhooks)."
    )


class SearchRequest(SearchOptions):
    """Text -> image."""

    query: Query


class SimilarRequest(SearchOptions):
    """Image -> image, from an image of the collection (itself left out of the hits)."""


class SearchPayload(SearchOptions):
    """One search: by text (``query``), by an image of the collection (``image_id``) or by
    an uploaded image (``image``), exactly one of them."""

    kind: Literal["search"] = "search"
    collection_id: str
    min_score: float | None  # from the request or the settings; None: calibrated
    query: str | None = None
    image_id: str | None = None
    image: ImageRef | None = None

    @model_validator(mode="after")
    def _one_query(self):
        if sum(q is not None for q in (self.query, self.image_id, self.image)) != 1:
            raise ValueError("a search has exactly one of query, image_id and image")
        return self


class SearchHit(BaseModel):
    image_id: str
    filename: str
    labels: list[str]
    metadata: dict[str, Any]
    score: float
    image_score: float
    crop_score: float | None = None
    crop_box: Box | None = None
    width: int
    height: int
    thumbnail_url: str | None = Field(description="None for an embedding imported alone.")


class SearchResult(BaseModel):
    kind: Literal["search"] = "search"
    collection_id: str
    query: str | None = Field(None, description="The text searched for, if any.")
    image_id: str | None = Field(None, description="The collection's image searched by.")
    image: str | None = Field(None, description="The filename of the uploaded query image.")
    rerank: RerankMode
    fusion: Fusion
    min_score: float | None = Field(
        description="The threshold applied to the best score; null: none (image queries "
        "without min_score)."
    )
    decision: Literal["calibrated", "min_score", "none"] = Field(
        "min_score",
        description="'calibrated': the threshold is the collection's own, set by how well "
        "unrelated text does in it; 'min_score': fixed by the request or the settings; "
        "'none': no threshold (an image query without min_score).",
    )
    no_match: bool = Field(description="True (and no hits) when the best score is under min_score.")
    approximate: bool = Field(
        False,
        description="True when the collection is large enough to be searched through its "
        "approximate index (CLIPQ_INDEX_EXACT_BELOW); hits are then scored exactly, but an "
        "image outside the index's shortlist can be missed.",
    )
    best_score: float | None = None
    hits: list[SearchHit]


# --- evaluation ------------------------------------------------------------------------


class EvaluationQuery(BaseModel):
    query: Query
    relevant_labels: Annotated[list[Label], Field(min_length=1, max_length=100)]


class EvaluateRequest(BaseModel):
    queries: list[EvaluationQuery] | None = Field(
        None,
        max_length=MAX_QUERIES,
        description="None: one query per label in the collection, from prompt_template. "
        "At most CLIPQ_MAX_QUERIES (1,000 by default), sent or made from labels.",
    )
    prompt_template: PromptTemplate = DEFAULT_TEMPLATE
    ks: list[int] = Field(default_factory=lambda: list(DEFAULT_KS), min_length=1, max_length=20)
    fusion: Fusion = Fusion.max
    crop_weight: float = Field(0.5, ge=0, le=1)
    callback_url: str | None = Field(
        None, description="POSTed the final Job (signed, Standard Webhooks)."
    )

    @field_validator("ks")
    @classmethod
    def _positive_sorted(cls, ks: list[int]) -> list[int]:
        if any(k < 1 or k > 1000 for k in ks):
            raise ValueError("every k must be between 1 and 1000")
        return sorted(set(ks))

    def resolved_queries(self, labels: set[str], limit: int) -> list[EvaluationQuery]:
        """The queries to run: the ones sent, or one per label of the collection made from
        ``prompt_template``; either way at most ``limit``, each naming labels it has.

        Raises :class:`InvalidInput` (a 422 naming ``queries``) otherwise.
        """
        if self.queries is None:
            return _label_queries(labels, self.prompt_template, limit)
        if len(self.queries) > limit:
            raise InvalidInput.for_field(
                "queries", f"{len(self.queries)} queries is more than {limit}"
            )
        for index, query in enumerate(self.queries):
            missing = sorted(set(query.relevant_labels) - labels)
            if missing:
                raise InvalidInput.for_field(
                    f"queries[{index}].relevant_labels",
                    f"the collection has no image labelled {', '.join(map(repr, missing))}",
                )
        return self.queries


def _label_queries(labels: set[str], template: str, limit: int) -> list[EvaluationQuery]:
    """One query per label: bounded like the queries a client sends."""
    if not labels:
        raise InvalidInput.for_field("queries", "the collection has no labels to evaluate")
    if len(labels) > limit:
        raise InvalidInput.for_field(
            "queries",
            f"the collection has {len(labels)} labels, more than {limit} queries: "
            "send the queries to evaluate",
        )
    too_long = sorted(label for label in labels if len(label) > MAX_LABEL_LENGTH)
    if too_long:  # stored before ingest checked labels
        raise InvalidInput.for_field(
            "queries",
            f"{len(too_long)} of the collection's labels are longer than {MAX_LABEL_LENGTH} "
            "characters: send the queries to evaluate",
        )
    return [
        EvaluationQuery(query=format_prompt(template, label), relevant_labels=[label])
        for label in sorted(labels)
    ]


class EvaluatePayload(EvaluateRequest):
    kind: Literal["evaluate"] = "evaluate"
    collection_id: str
    queries: list[EvaluationQuery]  # resolved by the API (EvaluateRequest.resolved_queries)


class ModeMetrics(BaseModel):
    recall_at: dict[str, float] = Field(description="Recall@K per K (as a string key).")
    mrr: float


class QueryMetrics(BaseModel):
    rank: int | None = Field(description="1-based rank of the first relevant image, if any.")
    reciprocal_rank: float
    recall_at: dict[str, float]


class QueryEvaluation(BaseModel):
    query: str
    relevant_labels: list[str]
    relevant_count: int
    none: QueryMetrics
    crops: QueryMetrics


class EvaluateResult(BaseModel):
    kind: Literal["evaluate"] = "evaluate"
    collection_id: str
    ks: list[int]
    images: int
    modes: dict[RerankMode, ModeMetrics]
    queries: list[QueryEvaluation]
