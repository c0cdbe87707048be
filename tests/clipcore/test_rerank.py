"""Crop geometry, fusion and exact search on hand-built embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from clipcore.rerank import best_crops, context_box, crop_regions, fuse
from clipcore.retrieval import CollectionIndex, rankings, search
from clipcore.schemas import CropBackground, Fusion, RerankMode


def test_context_box_is_a_square_twice_the_box_kept_inside() -> None:
    assert context_box([40, 40, 60, 50], 200, 200) == (30, 25, 70, 65)
    # At the border the square shifts inside rather than shrinking.
    assert context_box([0, 0, 20, 20], 100, 100) == (0, 0, 40, 40)
    # Never larger than the image.
    assert context_box([0, 0, 90, 90], 100, 60) == (15, 0, 75, 60)


def test_masked_crops_paint_the_background_grey() -> None:
    image = Image.new("RGB", (20, 20), (255, 0, 0))
    mask = np.zeros((20, 20), dtype=bool)
    mask[8:12, 8:12] = True
    kept, masked = (
        crop_regions(image, [[8, 8, 12, 12]], [mask], background=mode)[0]
        for mode in (CropBackground.keep, CropBackground.mask)
    )
    assert kept.size == masked.size == (8, 8)
    assert kept.getpixel((0, 0)) == (255, 0, 0)
    assert masked.getpixel((0, 0)) == (128, 128, 128)
    assert masked.getpixel((4, 4)) == (255, 0, 0)


def test_best_crop_per_image_and_fusion() -> None:
    crop_scores = torch.tensor([0.1, 0.7, 0.3, 0.2])
    owners = torch.tensor([0, 0, 2, 2])  # image 1 has no crops
    best, rows = best_crops(crop_scores, owners, 3)
    assert best.tolist()[0] == pytest.approx(0.7) and best[1] == float("-inf")
    assert rows.tolist() == [1, -1, 2]
    image_scores = torch.tensor([0.5, 0.4, 0.1])
    assert fuse(image_scores, best, Fusion.max).tolist() == pytest.approx([0.7, 0.4, 0.3])
    weighted = fuse(image_scores, best, Fusion.weighted, crop_weight=0.25)
    assert weighted.tolist() == pytest.approx([0.55, 0.4, 0.15])


def unit(*rows: list[float]) -> torch.Tensor:
    tensor = torch.tensor(rows, dtype=torch.float32)
    return tensor / tensor.norm(dim=-1, keepdim=True)


def test_crops_find_the_small_object_the_full_image_misses() -> None:
    index = CollectionIndex()
    images = unit([1, 0, 0], [0.6, 0.8, 0], [0, 0, 1])  # image 2's crop shows the query
    crops = unit([0, 0, 1], [0, 1, 0])
    index.extend(["a", "b", "c"], images, crops, torch.tensor([0, 2]), version=1)
    query = unit([0, 1, 0])[0]
    plain = search(index, query, top_k=3)
    assert plain[0].row == 1 and plain[0].crop_score is None
    reranked = search(index, query, top_k=3, rerank=RerankMode.crops)
    assert reranked[0].row == 2
    assert reranked[0].crop_score == pytest.approx(1.0)
    assert reranked[0].image_score == pytest.approx(0.0)
    assert index.region_index(reranked[0].crop_row) == 0
    assert rankings(index, query[None], RerankMode.crops, depth=2) == [[2, 1]]


def test_extend_appends_rows_and_crop_owners() -> None:
    index = CollectionIndex()
    index.extend(["a"], unit([1, 0]), unit([0, 1], [1, 1]), torch.tensor([0, 0]), version=1)
    index.extend(["b"], unit([0, 1]), unit([1, 0]), torch.tensor([1]), version=2)
    assert index.size == 2 and index.version == 2
    assert index.crop_owners.tolist() == [0, 0, 1]
    assert [index.region_index(r) for r in range(3)] == [0, 1, 0]


def test_an_image_query_leaves_itself_out_and_finds_its_row() -> None:
    index = CollectionIndex()
    images = unit([1, 0, 0], [0.9, 0.1, 0], [0, 0, 1])
    index.extend(["a", "b", "c"], images, torch.empty(0, 0), torch.empty(0), version=1)
    assert (index.row_of("b"), index.row_of("z")) == (1, None)
    hits = search(index, index.images[0], top_k=5, exclude=0)
    assert [h.row for h in hits] == [1, 2]  # all but itself, the nearest first
    index.extend(["d"], unit([1, 0, 0]), torch.empty(0, 0), torch.empty(0), version=2)
    assert index.row_of("d") == 3  # the lookup follows appended rows
    alone = CollectionIndex()
    alone.extend(["a"], unit([1, 0]), torch.empty(0, 0), torch.empty(0), version=1)
    assert search(alone, alone.images[0], top_k=3, exclude=0) == []


def test_evaluate_rankings_by_labels() -> None:
    from clipcore.retrieval import evaluate_rankings

    row_labels = [["cat"], ["dog", "pet"], ["car"]]
    outcomes = evaluate_rankings(
        ranked_rows=[[2, 1, 0], [0, 1, 2]],
        row_labels=row_labels,
        relevant_labels=[["pet"], ["truck"]],
        ks=[1, 2],
    )
    assert outcomes[0].rank == 2 and outcomes[0].reciprocal_rank == 0.5
    assert outcomes[0].recall_at == {"1": 0.0, "2": 1.0}
    assert outcomes[1].rank is None and outcomes[1].reciprocal_rank == 0
