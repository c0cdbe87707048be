"""Zero-shot classification: labels become prompt embeddings, images get probabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from clipcore.batching import (
    BatchObserver,
    EmbeddingStore,
    Upload,
    embed_uploads,
    stack_embedded,
)
from clipcore.clip_model import LoadedClip
from clipcore.domain import DomainReference
from clipcore.domain_check import DomainCheck
from clipcore.encode import EmbeddingCache, embed_texts
from clipcore.families import Scoring
from clipcore.images import DEFAULT_BATCH_PIXELS
from clipcore.problem import Problem
from clipcore.prompts import format_prompt
from clipcore.schemas import ClassifiedImage, LabelScore


def format_prompts(labels: Sequence[str], template: str) -> list[str]:
    """``template`` with each label in place of ``{}``."""
    return [format_prompt(template, label) for label in labels]


def build_zero_shot_classifier(
    clip: LoadedClip, labels: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """Return a (len(labels), dim) matrix of unit label embeddings.

    With several templates the prompt embeddings of a label are averaged and
    renormalised (a prompt ensemble, as in CLIP's paper).
    """
    per_template = [embed_texts(clip, format_prompts(labels, t)) for t in templates]
    mean = torch.stack(per_template).mean(dim=0)
    return mean / mean.norm(dim=-1, keepdim=True)


def cached_classifier(
    cache: EmbeddingCache, clip: LoadedClip, labels: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    key = (clip.model_id, tuple(labels), tuple(templates))
    return cache.get_or_compute(key, lambda: build_zero_shot_classifier(clip, labels, templates))


def top_k(probabilities: torch.Tensor, labels: Sequence[str], k: int) -> list[list[LabelScore]]:
    """The ``k`` most probable labels per row, most probable first."""
    values, indices = probabilities.topk(min(k, len(labels)), dim=-1)
    return [
        [
            LabelScore(label=labels[i], probability=float(p))
            for p, i in zip(row_p, row_i, strict=True)
        ]
        for row_p, row_i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def classify_uploads(
    clip: LoadedClip,
    cache: EmbeddingCache,
    uploads: Sequence[Upload],
    *,
    labels: Sequence[str],
    prompt_template: str,
    top_k_labels: int,
    batch_size: int,
    max_pixels: int,
    max_batch_pixels: int = DEFAULT_BATCH_PIXELS,
    on_progress: Callable[[int], None] = lambda done: None,
    image_cache: EmbeddingStore | None = None,
    observe: BatchObserver | None = None,
) -> list[ClassifiedImage]:
    """Classify each upload against ``labels``; an undecodable image gets an error, not a crash.

    The two halves, :func:`embed_uploads` and :func:`classify_embedded`, are also used
    apart: a worker embeds the images of several jobs in one model batch, then
    classifies each job's share against its own labels.
    """
    classifier = cached_classifier(cache, clip, labels, [prompt_template])
    embedded = embed_uploads(
        clip,
        uploads,
        batch_size=batch_size,
        max_pixels=max_pixels,
        max_batch_pixels=max_batch_pixels,
        on_progress=on_progress,
        cache=image_cache,
        observe=observe,
    )
    return classify_embedded(
        uploads,
        embedded,
        classifier,
        clip.scoring,
        labels=labels,
        top_k_labels=top_k_labels,
        domain=clip.domain,
    )


def classify_embedded(
    uploads: Sequence[Upload],
    embedded: Sequence[torch.Tensor | Problem],
    classifier: torch.Tensor,
    scoring: Scoring,
    *,
    labels: Sequence[str],
    top_k_labels: int,
    domain: DomainReference | None = None,
) -> list[ClassifiedImage]:
    """Rank ``labels`` for uploads already embedded.

    ``embedded`` holds, per upload, its unit embedding or the problem that stopped it;
    ``classifier`` is the (labels, dim) matrix of :func:`build_zero_shot_classifier`;
    ``scoring`` the model's rule (:class:`clipcore.families.Scoring`: softmax for CLIP,
    each label's sigmoid for SigLIP).
    With a ``domain`` reference each image also gets its domain check, and is
    ``uncertain`` when it is out of the model's domain.
    """
    positions, matrix = stack_embedded(embedded)
    ranked: dict[int, list[LabelScore]] = {}
    checks: dict[int, DomainCheck] = {}
    if positions:
        probabilities = scoring.probabilities(matrix, classifier)
        ranked = dict(zip(positions, top_k(probabilities, labels, top_k_labels), strict=True))
        if domain is not None:
            checks = dict(zip(positions, domain.check(matrix), strict=True))
    return [
        ClassifiedImage(
            filename=upload.filename,
            sha256=upload.sha256,
            predictions=ranked.get(i, []),
            error=item if isinstance(item, Problem) else None,
            domain=checks.get(i),
            uncertain=i in checks and not checks[i].in_domain,
        )
        for i, (upload, item) in enumerate(zip(uploads, embedded, strict=True))
    ]
