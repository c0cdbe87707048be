"""The approximate index answers as the exact scan does, for images, crops and image queries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipcore.retrieval import CollectionIndex, collection_nulls, rankings, search
from clipcore.schemas import RerankMode
from clipcore.vector_index import MIN_ROWS, ApproximateIndex, IndexPolicy

DIM = 32


def clustered(rng: np.random.Generator, count: int, centres: np.ndarray) -> torch.Tensor:
    vectors = centres[rng.integers(len(centres), size=count)]
    vectors = vectors + rng.standard_normal((count, DIM)).astype(np.float32) * 0.15
    return torch.from_numpy(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


@pytest.fixture(scope="module")
def collections() -> tuple[CollectionIndex, CollectionIndex, torch.Tensor]:
    """The same 3,000 images with 2 crops each, indexed exactly and approximately."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((60, DIM)).astype(np.float32)
    images, crops = clustered(rng, 3000, centres), clustered(rng, 6000, centres)
    owners = torch.arange(3000).repeat_interleave(2)
    ids = [f"{i:024x}" for i in range(3000)]
    exact = CollectionIndex()
    approximate = CollectionIndex(policy=IndexPolicy(exact_below=2000, nprobe=16))
    for index in (exact, approximate):  # in two ingests, as a worker refreshes
        index.extend(ids[:1000], images[:1000], crops[:2000], owners[:2000], 1)
        index.extend(ids[1000:], images[1000:], crops[2000:], owners[2000:], 2)
    return exact, approximate, clustered(rng, 40, centres)


def test_a_large_collection_moves_into_faiss(collections) -> None:
    exact, approximate, _ = collections
    assert not exact.approximate and approximate.approximate
    assert approximate.images.numel() == 0 and approximate.crops.numel() == 0
    assert approximate.nbytes < exact.nbytes * 0.7  # fp16 copies and 2-byte codes, not fp32
    assert torch.allclose(approximate.vector(1234), exact.vector(1234), atol=1e-3)


@pytest.mark.parametrize("rerank", [RerankMode.none, RerankMode.crops])
def test_approximate_hits_are_the_exact_ones(collections, rerank: RerankMode) -> None:
    exact, approximate, queries = collections
    overlap = []
    for query in queries:
        want = search(exact, query, 10, rerank)
        got = search(approximate, query, 10, rerank)
        overlap.append(len({h.row for h in want} & {h.row for h in got}) / 10)
        for hit in got:  # every score is the exact one, fused as the exact scan fuses
            assert hit.image_score == pytest.approx(float(exact.images[hit.row] @ query), abs=2e-3)
            if hit.crop_row is not None:
                assert int(exact.crop_owners[hit.crop_row]) == hit.row
                crop = float(exact.crops[hit.crop_row] @ query)
                assert hit.crop_score == pytest.approx(crop, abs=2e-3)
                assert approximate.region_index(hit.crop_row) == hit.crop_row - 2 * hit.row
    assert np.mean(overlap) >= 0.9, np.mean(overlap)


def test_image_queries_leave_themselves_out_and_new_rows_are_found(collections) -> None:
    exact, approximate, _ = collections
    hits = search(approximate, approximate.vector(77), 5, exclude=77)
    assert len(hits) == 5 and 77 not in [h.row for h in hits]
    assert [h.row for h in hits][:3] == [
        h.row for h in search(exact, exact.vector(77), 3, exclude=77)
    ]
    fresh = torch.nn.functional.normalize(torch.randn(1, DIM), dim=1)
    approximate.extend(["f" * 24], fresh, torch.empty(0, 0), torch.empty(0), 3)
    assert search(approximate, fresh[0], 1)[0].row == 3000  # added without retraining
    assert approximate.row_of("f" * 24) == 3000


def test_nulls_and_rankings_work_on_the_shortlist(collections) -> None:
    exact, approximate, queries = collections
    nulls_exact = collection_nulls(exact, queries[:20])
    nulls_approximate = collection_nulls(approximate, queries[:20])
    assert nulls_approximate.mean == pytest.approx(nulls_exact.mean, abs=0.01)
    ranked = rankings(approximate, queries[:3], RerankMode.crops, depth=25)
    assert [len(r) for r in ranked] == [25, 25, 25]


def test_growth_past_the_training_size_rebuilds() -> None:
    rng = np.random.default_rng(1)
    vectors = clustered(rng, 1200, rng.standard_normal((10, DIM)).astype(np.float32)).numpy()
    index = ApproximateIndex.of(vectors[:300], IndexPolicy(retrain_growth=2))
    index.add(vectors[300:500])
    assert not index.flat and not index.stale()
    index.add(vectors[500:600])
    assert index.stale() and index.size == 600
    few = ApproximateIndex.of(vectors[:20], IndexPolicy())  # a collection's first few crops
    assert few.flat and search_rows(few, vectors[7]) == 7
    few.add(vectors[20:MIN_ROWS])
    assert few.stale()  # flat no longer: the owner retrains it
    collection = CollectionIndex(policy=IndexPolicy(exact_below=300, retrain_growth=2))
    for start in range(0, 1200, 100):
        batch = torch.from_numpy(vectors[start : start + 100])
        ids = [f"{i:024x}" for i in range(start, start + 100)]
        crops = batch[:1] if start >= 400 else torch.empty(0, 0)  # crops begin late, few
        owners = torch.tensor([start]) if start >= 400 else torch.empty(0)
        collection.extend(ids, batch, crops, owners, start)
    assert collection.approximate_images is not None
    assert collection.approximate_images.trained_rows >= 600  # retrained on the grown rows
    assert collection.approximate_crops is not None and collection.approximate_crops.flat
    assert search(collection, torch.from_numpy(vectors[555]), 1)[0].row == 555
    hit = search(collection, torch.from_numpy(vectors[700]), 1, RerankMode.crops)[0]
    assert (hit.row, hit.crop_row) == (700, 3)  # the crop of image 700 is crop row 3


def search_rows(index: ApproximateIndex, vector: np.ndarray) -> int:
    return int(index.search(vector[None], 1)[1][0, 0])


def test_a_saved_index_is_mapped_and_grows_beside_itself(tmp_path) -> None:
    rng = np.random.default_rng(2)
    vectors = clustered(rng, 1500, rng.standard_normal((20, DIM)).astype(np.float32)).numpy()
    built = ApproximateIndex.of(vectors[:1000], IndexPolicy())
    built.save(tmp_path / "images.faiss")
    assert [p.name for p in tmp_path.iterdir()] == ["images.faiss"]  # no partial left behind
    mapped = ApproximateIndex.load(tmp_path / "images.faiss", IndexPolicy())
    assert mapped.mapped and mapped.size == 1000
    assert np.array_equal(mapped.search(vectors[:5], 3)[1], built.search(vectors[:5], 3)[1])
    mapped.add(vectors[1000:1100])  # kept beside the mapped base, exact
    assert mapped.size == 1100 and len(mapped.delta) == 100 and not mapped.stale()
    scores, rows = mapped.search(vectors[[1050, 20]], 1)
    assert rows[:, 0].tolist() == [1050, 20] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(mapped.vectors(np.array([5, 1099])), vectors[[5, 1099]], atol=1e-3)
    mapped.add(vectors[1100:1400])  # a delta past a tenth of the base: time to retrain
    assert mapped.stale()
    again = mapped.rebuilt()
    assert not again.mapped and again.size == 1400 and len(again.delta) == 0


def test_an_index_with_a_source_holds_codes_and_rescores_from_the_source(tmp_path) -> None:
    rng = np.random.default_rng(3)
    vectors = clustered(rng, 4000, rng.standard_normal((40, DIM)).astype(np.float32)).numpy()
    stored = vectors.astype(np.float16)  # what a collection's files hold
    reads: list[int] = []

    def source(rows: np.ndarray) -> np.ndarray:
        assert np.all(np.diff(rows) > 0)  # sorted, each row once
        reads.append(len(rows))
        return stored[rows].astype(np.float32)

    policy = IndexPolicy(nprobe=16)
    held = ApproximateIndex.of(vectors[:3000], policy)
    sourced = ApproximateIndex.of(vectors[:3000], policy, source)
    assert held.nbytes - sourced.nbytes >= 3000 * DIM * 2  # no fp16 copies inside
    queries = vectors[3000:3040]
    truth = np.argsort(-(queries @ vectors[:3000].T), axis=1)[:, :10]
    scores, rows = sourced.search(queries, 10)
    recall = np.mean([len(set(r) & set(t)) / 10 for r, t in zip(rows, truth, strict=True)])
    assert recall >= 0.9, recall
    assert np.allclose(scores[:, 0], np.sum(queries * stored[rows[:, 0]], axis=1), atol=1e-5)
    assert reads and max(reads) <= 40 * 10 * policy.refine
    assert np.array_equal(sourced.vectors(np.array([9, 2999])), stored[[9, 2999]])
    # saved without copies, mapped with its source, merged (not retrained) past its delta
    sourced.save(tmp_path / "codes.faiss")
    mapped = ApproximateIndex.load(tmp_path / "codes.faiss", policy, 3000, source)
    mapped.add(vectors[3000:3400])
    assert mapped.stale() and mapped.search(vectors[[3399]], 5)[1][0, 0] == 3399
    merged = mapped.rebuilt()
    assert (merged.mapped, merged.size, merged.trained_rows) == (False, 3400, 3000)
    # (k of 5: at 32 dimensions a code is 2 bytes, too coarse to shortlist 1 x 50 well)
    assert merged.search(vectors[[3399]], 5)[1][0, 0] == 3399


def test_built_in_blocks_trains_on_a_spread_sample() -> None:
    rng = np.random.default_rng(4)
    vectors = clustered(rng, 5000, rng.standard_normal((50, DIM)).astype(np.float32)).numpy()
    blocks: list[tuple[int, int]] = []

    def read(start: int, end: int) -> np.ndarray:
        blocks.append((start, end))
        return vectors[start:end]

    index = ApproximateIndex.built(read, 5000, DIM, IndexPolicy())
    assert index.size == 5000 and index.trained_rows == 5000
    sampled = blocks[:-1]  # the last read adds the rows (one block: fewer than BLOCK)
    assert blocks[-1] == (0, 5000) and sampled[0][0] < 100 and sampled[-1][1] > 4900
    assert sum(b - a for a, b in sampled) < 5000
