"""Zero-shot classification against a direct transformers computation on the same inputs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from clipcore.batching import Upload, embed_uploads
from clipcore.classify import (
    build_zero_shot_classifier,
    classify_uploads,
    format_prompts,
    top_k,
)
from clipcore.clip_model import ClipCache, ClipLoad, LoadedClip, load_clip, resolve_model_source
from clipcore.encode import EmbeddingCache, embed_images
from clipcore.errors import ModelLoadError
from clipq.errors import JobCancelled
from tests.support import distinct_pngs, png_bytes, truncated_png

LABELS = ["cat", "dog", "red circle", "blue square"]


@pytest.fixture(scope="module")
def clip(random_clip_dir: Path) -> LoadedClip:
    return load_clip(str(random_clip_dir), "cpu")


def uploads(datas: list[bytes]) -> list[Upload]:
    return [Upload(f"{i}.png", f"sha{i}", data) for i, data in enumerate(datas)]


def test_probabilities_equal_transformers(clip: LoadedClip, random_clip_dir: Path) -> None:
    datas = [png_bytes((220, 40, 40)), png_bytes((40, 80, 220)), png_bytes((240, 210, 40))]
    results = classify_uploads(
        clip,
        EmbeddingCache(),
        uploads(datas),
        labels=LABELS,
        prompt_template="a photo of a {}.",
        top_k_labels=len(LABELS),
        batch_size=2,
        max_pixels=10**6,
    )
    model = CLIPModel.from_pretrained(random_clip_dir).eval()
    processor = CLIPProcessor.from_pretrained(random_clip_dir)
    images = [Image.open(io.BytesIO(d)).convert("RGB") for d in datas]
    inputs = processor(
        text=format_prompts(LABELS, "a photo of a {}."),
        images=images,
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        expected = model(**inputs).logits_per_image.softmax(dim=-1)
    for row, result in zip(expected, results, strict=True):
        got = {p.label: p.probability for p in result.predictions}
        for label, probability in zip(LABELS, row.tolist(), strict=True):
            assert got[label] == pytest.approx(probability, abs=1e-4)
        ranked = [p.probability for p in result.predictions]
        assert ranked == sorted(ranked, reverse=True)


def test_prompt_ensemble_is_the_normalised_mean(clip: LoadedClip) -> None:
    templates = ["a photo of a {}.", "a drawing of a {}."]
    ensemble = build_zero_shot_classifier(clip, ["cat", "dog"], templates)
    singles = [build_zero_shot_classifier(clip, ["cat", "dog"], [t]) for t in templates]
    mean = (singles[0] + singles[1]) / 2
    assert torch.allclose(ensemble, mean / mean.norm(dim=-1, keepdim=True), atol=1e-6)
    assert torch.allclose(ensemble.norm(dim=-1), torch.ones(2), atol=1e-6)


def test_top_k_orders_and_limits() -> None:
    probabilities = torch.tensor([[0.1, 0.6, 0.3]])
    best = top_k(probabilities, ["a", "b", "c"], 2)[0]
    assert [(s.label, round(s.probability, 3)) for s in best] == [("b", 0.6), ("c", 0.3)]
    assert len(top_k(probabilities, ["a", "b", "c"], 10)[0]) == 3


def test_probabilities_sum_to_one(clip: LoadedClip) -> None:
    classifier = build_zero_shot_classifier(clip, LABELS, ["{}"])
    embeddings = embed_images(clip, [Image.new("RGB", (30, 30), (9, 9, 9))])
    total = clip.scoring.probabilities(embeddings, classifier).sum()
    assert float(total) == pytest.approx(1.0, abs=1e-5)


def test_label_set_embeddings_are_cached(clip: LoadedClip) -> None:
    cache = EmbeddingCache()
    for _ in range(3):
        classify_uploads(
            clip,
            cache,
            uploads([png_bytes((1, 2, 3))]),
            labels=["a", "b"],
            prompt_template="{}",
            top_k_labels=1,
            batch_size=4,
            max_pixels=10**6,
        )
    assert (cache.misses, cache.hits) == (1, 2)


def test_undecodable_image_fails_alone(clip: LoadedClip) -> None:
    results = classify_uploads(
        clip,
        EmbeddingCache(),
        uploads([png_bytes((5, 5, 5)), truncated_png()]),
        labels=["a", "b"],
        prompt_template="{}",
        top_k_labels=2,
        batch_size=1,
        max_pixels=10**6,
    )
    assert results[0].error is None and len(results[0].predictions) == 2
    assert results[1].predictions == [] and results[1].error.status == 422
    assert "1.png" in results[1].error.detail


def test_progress_after_each_batch_and_cancellation_stops(clip: LoadedClip) -> None:
    seen: list[int] = []
    embed_uploads(
        clip, uploads(distinct_pngs(7)), batch_size=3, max_pixels=10**6, on_progress=seen.append
    )
    assert seen == [3, 6, 7]

    def cancel_after_first(done: int) -> None:
        seen.append(done)
        raise JobCancelled("stop")

    seen.clear()
    with pytest.raises(JobCancelled):
        embed_uploads(
            clip,
            uploads(distinct_pngs(7)),
            batch_size=3,
            max_pixels=10**6,
            on_progress=cancel_after_first,
        )
    assert seen == [3]


def test_model_specs(random_clip_dir: Path) -> None:
    assert resolve_model_source(str(random_clip_dir)) == str(random_clip_dir)
    assert resolve_model_source("openai/clip-vit-base-patch32") == "openai/clip-vit-base-patch32"
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_source("/no/such/folder")
    cache = ClipCache()
    load = ClipLoad(str(random_clip_dir), "cpu")
    assert cache.get(load) is cache.get(ClipLoad(str(random_clip_dir), "cpu"))


def test_out_of_memory_halves_the_batch_then_fails_only_what_cannot_fit(
    clip: LoadedClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clipcore.batching import embed_fitting
    from clipcore.encode import preprocess_images

    pixels = preprocess_images(clip, [Image.new("RGB", (20, 20), (i, 0, 0)) for i in range(5)])
    expected = embed_fitting(clip, pixels)
    real = clip.family.image_features
    sizes: list[int] = []

    def small_device(pixels):
        sizes.append(len(pixels))
        if len(pixels) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(pixels)

    monkeypatch.setattr(clip.family, "image_features", small_device)
    halved = embed_fitting(clip, pixels)
    assert sizes == [5, 2, 3, 1, 2]
    for got, want in zip(halved, expected, strict=True):
        assert torch.allclose(got, want, atol=1e-5)

    def nothing_fits(pixels):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(clip.family, "image_features", nothing_fits)
    problems = embed_fitting(clip, pixels[:2])
    assert [p.status for p in problems] == [507, 507]


def test_the_article_before_a_vowel_reads_an() -> None:
    from clipcore.prompts import format_prompt

    assert format_prompt("a photo of a {}.", "orange circle") == "a photo of an orange circle."
    assert format_prompt("a {}", "apple") == "an apple"
    assert format_prompt("a photo of a {}.", "red circle") == "a photo of a red circle."
    assert format_prompt("the {}", "orange") == "the orange"
