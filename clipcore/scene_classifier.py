"""Scene classification with CLIP: per-scene probabilities from prompt ensembles.

Each scene of a taxonomy becomes one text embedding, the normalised mean of
its prompts' embeddings; an image's scene probabilities are the softmax of the
model's logits over the scenes (``Scoring.choice``: one scene holds, whatever the
family's own per-label rule). The pure rules that turn
probabilities into recommendations live in :mod:`clipcore.scenes`.

:class:`SceneClassifier` is the in-process facade for reconstruction scripts
(the seed's "Python integration").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from clipcore.batching import (
    BatchObserver,
    EmbeddingStore,
    Upload,
    embed_uploads,
    stack_embedded,
)
from clipcore.classify import build_zero_shot_classifier
from clipcore.clip_model import LoadedClip, load_clip
from clipcore.encode import EmbeddingCache, embed_images
from clipcore.errors import InvalidImage
from clipcore.images import DEFAULT_BATCH_PIXELS
from clipcore.problem import Problem
from clipcore.scenes import DatasetSummary, SceneImageResult, scene_image_result, summarize_dataset
from clipcore.schemas import SceneBatch, SceneImage, TaxonomyRef
from clipcore.taxonomy import Matcher, Speed, Taxonomy, load_default_taxonomy, taxonomy_hash

DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_MIN_MARGIN = 0.1


def build_scene_embeddings(clip: LoadedClip, taxonomy: Taxonomy) -> torch.Tensor:
    """(scenes, dim) unit embeddings: each scene's prompts embedded, averaged, renormalised."""
    rows = [build_zero_shot_classifier(clip, scene.prompts, ["{}"]) for scene in taxonomy.scenes]
    means = torch.stack([row.mean(dim=0) for row in rows])
    return means / means.norm(dim=-1, keepdim=True)


def cached_scene_embeddings(
    cache: EmbeddingCache, clip: LoadedClip, taxonomy: Taxonomy
) -> torch.Tensor:
    key = ("scenes", clip.model_id, taxonomy_hash(taxonomy))
    return cache.get_or_compute(key, lambda: build_scene_embeddings(clip, taxonomy))


def taxonomy_ref(taxonomy: Taxonomy) -> TaxonomyRef:
    return TaxonomyRef(name=taxonomy.name, version=taxonomy.version, hash=taxonomy_hash(taxonomy))


def classify_scene_uploads(
    clip: LoadedClip,
    cache: EmbeddingCache,
    uploads: Sequence[Upload],
    *,
    taxonomy: Taxonomy,
    speed: Speed,
    min_confidence: float,
    min_margin: float,
    batch_size: int,
    max_pixels: int,
    max_batch_pixels: int = DEFAULT_BATCH_PIXELS,
    on_progress: Callable[[int], None] = lambda done: None,
    image_cache: EmbeddingStore | None = None,
    observe: BatchObserver | None = None,
) -> SceneBatch:
    """Each upload's scene and matcher; with two or more classified images, the dataset summary.

    :func:`embed_uploads` followed by :func:`scenes_from_embedded`; a worker also calls
    the two apart, to embed several jobs' images in one model batch.
    """
    scenes = cached_scene_embeddings(cache, clip, taxonomy)
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
    return scenes_from_embedded(
        clip,
        uploads,
        embedded,
        scenes,
        taxonomy=taxonomy,
        speed=speed,
        min_confidence=min_confidence,
        min_margin=min_margin,
    )


def scenes_from_embedded(
    clip: LoadedClip,
    uploads: Sequence[Upload],
    embedded: Sequence[torch.Tensor | Problem],
    scenes: torch.Tensor,
    *,
    taxonomy: Taxonomy,
    speed: Speed,
    min_confidence: float,
    min_margin: float,
) -> SceneBatch:
    """The scenes result for uploads already embedded.

    ``embedded`` holds, per upload, its unit embedding or the problem that stopped it;
    ``scenes`` is the (scenes, dim) matrix of :func:`build_scene_embeddings` for ``taxonomy``.
    """
    positions, matrix = stack_embedded(embedded)
    predictions: dict[int, SceneImageResult] = {}
    if positions:
        probabilities = clip.scoring.choice(matrix, scenes).tolist()
        checks = clip.domain.check(matrix) if clip.domain is not None else [None] * len(positions)
        for position, row, check in zip(positions, probabilities, checks, strict=True):
            predictions[position] = scene_image_result(
                taxonomy,
                uploads[position].filename,
                row,
                speed,
                min_confidence=min_confidence,
                min_margin=min_margin,
                domain=check,
            )
    images = [
        SceneImage(
            filename=upload.filename,
            sha256=upload.sha256,
            prediction=predictions.get(i),
            error=item if isinstance(item, Problem) else None,
        )
        for i, (upload, item) in enumerate(zip(uploads, embedded, strict=True))
    ]
    summary = None
    if len(predictions) >= 2:
        tops = [predictions[i].top_scene for i in sorted(predictions)]
        summary = summarize_dataset(taxonomy, tops, speed)
    return SceneBatch(
        model=clip.model_id,
        taxonomy=taxonomy_ref(taxonomy),
        speed=speed,
        images=images,
        summary=summary,
    )


class SceneClassifier:
    """Classify scenes in-process and recommend matchers, as a reconstruction script wants.

    >>> classifier = SceneClassifier()                      # the embedded CLIP, default taxonomy
    >>> scene, confidence = classifier.get_top_prediction("office.jpg")
    >>> classifier.get_model_recommendation(scene).name
    """

    def __init__(
        self,
        model: str = "embedded",
        device: str = "auto",
        taxonomy: Taxonomy | None = None,
        *,
        batch_size: int = 32,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        min_margin: float = DEFAULT_MIN_MARGIN,
        max_pixels: int = 40_000_000,
    ) -> None:
        self.clip = load_clip(model, device)
        self.taxonomy = taxonomy or load_default_taxonomy()
        self.batch_size = batch_size
        self.min_confidence = min_confidence
        self.min_margin = min_margin
        self.max_pixels = max_pixels
        self._cache = EmbeddingCache()

    def classify_batch(
        self,
        images: Sequence[str | Path | bytes],
        speed: Speed = Speed.balanced,
        on_progress: Callable[[int], None] = lambda done: None,
    ) -> SceneBatch:
        """Classify files (paths) or encoded images (bytes); unreadable ones get an error."""
        read = [_read(image, i) for i, image in enumerate(images)]
        uploads = [item for item in read if isinstance(item, Upload)]
        result = classify_scene_uploads(
            self.clip,
            self._cache,
            uploads,
            taxonomy=self.taxonomy,
            speed=Speed(speed),
            min_confidence=self.min_confidence,
            min_margin=self.min_margin,
            batch_size=self.batch_size,
            max_pixels=self.max_pixels,
            on_progress=on_progress,
        )
        classified = iter(result.images)
        result.images = [
            item if isinstance(item, SceneImage) else next(classified) for item in read
        ]
        return result

    def classify_image(
        self, image: str | Path | bytes | Image.Image, speed: Speed = Speed.balanced
    ) -> SceneImageResult:
        """One image's scene result; raises :class:`clipcore.errors.InvalidImage` if unreadable."""
        if isinstance(image, Image.Image):
            embedding = embed_images(self.clip, [image])
            scenes = cached_scene_embeddings(self._cache, self.clip, self.taxonomy)
            row = self.clip.scoring.choice(embedding, scenes)[0].tolist()
            domain = self.clip.domain
            return scene_image_result(
                self.taxonomy,
                "image",
                row,
                Speed(speed),
                min_confidence=self.min_confidence,
                min_margin=self.min_margin,
                domain=domain.check(embedding)[0] if domain is not None else None,
            )
        entry = self.classify_batch([image], speed).images[0]
        if entry.prediction is None:
            raise InvalidImage(entry.filename, entry.error.detail if entry.error else "unreadable")
        return entry.prediction

    def scene_probabilities(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(images, scenes) probabilities for decoded RGB images."""
        scenes = cached_scene_embeddings(self._cache, self.clip, self.taxonomy)
        return self.clip.scoring.choice(embed_images(self.clip, images), scenes)

    def get_top_prediction(self, image: str | Path | bytes | Image.Image) -> tuple[str, float]:
        """(scene name, confidence in [0, 1]) of the image's most probable scene."""
        result = self.classify_image(image)
        return result.top_scene, result.confidence

    def get_model_recommendation(self, scene: str, speed: Speed = Speed.balanced) -> Matcher:
        """The matcher the taxonomy recommends for ``scene`` at ``speed``."""
        return self.taxonomy.scene(scene).recommendations.for_speed(Speed(speed))

    def summarize(self, top_scenes: Sequence[str], speed: Speed = Speed.balanced) -> DatasetSummary:
        return summarize_dataset(self.taxonomy, top_scenes, Speed(speed))


def _read(image: str | Path | bytes, index: int) -> Upload | SceneImage:
    """An upload from bytes or a path; a file that cannot be read becomes its error entry."""
    if isinstance(image, bytes):
        return Upload(f"image-{index}", hashlib.sha256(image).hexdigest(), image)
    path = Path(image)
    try:
        data = path.read_bytes()
    except OSError as exc:
        problem = InvalidImage(path.name, f"cannot read the file ({exc.strerror})").to_problem()
        return SceneImage(filename=path.name, sha256="", prediction=None, error=problem)
    return Upload(path.name, hashlib.sha256(data).hexdigest(), data)
