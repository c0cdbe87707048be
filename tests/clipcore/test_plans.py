"""The pair shortlist and dataset hygiene of reconstruction plans, without a model."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from clipcore.plans.hygiene import hygiene_report
from clipcore.plans.schemas import Action, HygieneFlag, PairSource, ShortlistStrategy
from clipcore.plans.shortlist import capture_order, nearest_neighbours, pair_shortlist


def unit_rows(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    rows = rng.normal(size=(n, d)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_nearest_neighbours_are_the_most_similar_others_in_order() -> None:
    rows = unit_rows(np.random.default_rng(0), 50)
    indices, similarities = nearest_neighbours(rows, 5)
    exact = rows @ rows.T
    np.fill_diagonal(exact, -np.inf)
    for i in range(50):
        assert i not in indices[i]
        assert list(indices[i]) == list(np.argsort(-exact[i])[:5])
        assert np.all(np.diff(similarities[i]) <= 0)
    assert nearest_neighbours(rows[:3], 10)[0].shape == (3, 2)  # k capped at n - 1


def test_retrieval_pairs_are_symmetrised_once_and_skip_excluded_images() -> None:
    rows = unit_rows(np.random.default_rng(1), 30)
    names = [f"img_{i}.jpg" for i in range(30)]
    shortlist = pair_shortlist(
        rows,
        names,
        strategy=ShortlistStrategy.retrieval,
        pairs_per_image=4,
        window=0,
        exclude={3},
    )
    keys = [(p.image0, p.image1) for p in shortlist.pairs]
    assert len(keys) == len(set(keys))
    assert not {(b, a) for a, b in keys} & set(keys)
    assert all("img_3.jpg" not in key for key in keys)
    assert "img_3.jpg" in shortlist.unpaired
    assert shortlist.exhaustive_pairs == 30 * 29 // 2
    assert 4 * 29 / 2 <= len(keys) <= 4 * 29  # between all mutual and none mutual
    position = {name: i for i, name in enumerate(names)}
    assert all(position[a] < position[b] for a, b in keys)
    sims = [p.similarity for p in shortlist.pairs]
    assert sims == sorted(sims, reverse=True)


def test_sequential_window_follows_natural_file_name_order() -> None:
    names = ["frame_10.jpg", "frame_2.jpg", "frame_1.jpg", "frame_3.jpg"]
    assert [names[i] for i in capture_order(names)] == [
        "frame_1.jpg",
        "frame_2.jpg",
        "frame_3.jpg",
        "frame_10.jpg",
    ]
    rows = unit_rows(np.random.default_rng(2), 4)
    shortlist = pair_shortlist(
        rows, names, strategy=ShortlistStrategy.sequential, pairs_per_image=0, window=1
    )
    pairs = {frozenset((p.image0, p.image1)) for p in shortlist.pairs}
    assert pairs == {
        frozenset(("frame_1.jpg", "frame_2.jpg")),
        frozenset(("frame_2.jpg", "frame_3.jpg")),
        frozenset(("frame_3.jpg", "frame_10.jpg")),
    }


def test_retrieval_and_sequential_merge_and_say_what_proposed_each_pair() -> None:
    rows = unit_rows(np.random.default_rng(3), 12)
    names = [f"f{i:02d}.jpg" for i in range(12)]
    merged = pair_shortlist(
        rows,
        names,
        strategy=ShortlistStrategy.retrieval_sequential,
        pairs_per_image=2,
        window=2,
    )
    alone = pair_shortlist(
        rows, names, strategy=ShortlistStrategy.retrieval, pairs_per_image=2, window=2
    )
    assert {(p.image0, p.image1) for p in alone.pairs} < {
        (p.image0, p.image1) for p in merged.pairs
    }
    assert {PairSource.sequential, PairSource.retrieval} <= {
        source for p in merged.pairs for source in p.sources
    }
    exhaustive = pair_shortlist(
        rows, names, strategy=ShortlistStrategy.exhaustive, pairs_per_image=0, window=0
    )
    assert len(exhaustive.pairs) == exhaustive.exhaustive_pairs == 66


def texture(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 220, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.NEAREST)


def jpeg(image: Image.Image, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def report():
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R5"
    exif.get_ifd(0x8769)[0x920A] = 24.0
    exif.get_ifd(0x8769)[0xA405] = 24
    images = {f"sharp_{i}.jpg": jpeg(texture(i)) for i in range(6)}
    images["exif.jpg"] = jpeg(texture(10), exif)
    images["blurred.jpg"] = jpeg(texture(11).filter(ImageFilter.GaussianBlur(6)))
    images["bright.jpg"] = jpeg(texture(12).point(lambda v: min(255, v * 3)))
    images["small.jpg"] = jpeg(texture(13, (320, 240)))
    images["again.jpg"] = jpeg(texture(0))  # sharp_0 once more, re-encoded
    images["broken.jpg"] = b"\xff\xd8 not really a jpeg"
    names = list(images)
    rows = unit_rows(np.random.default_rng(4), len(names))
    rows[names.index("again.jpg")] = rows[names.index("sharp_0.jpg")]  # neighbours
    found = hygiene_report(list(images.items()), rows)
    return {image.filename: image for image in found.images}, found


def test_hygiene_flags_what_is_wrong_and_keeps_the_rest(report) -> None:
    images, _ = report
    for i in range(1, 6):
        assert images[f"sharp_{i}.jpg"].action == Action.keep, images[f"sharp_{i}.jpg"]
    assert HygieneFlag.blurry in images["blurred.jpg"].flags
    assert images["blurred.jpg"].action == Action.drop
    assert images["blurred.jpg"].relative_sharpness < 0.2
    assert images["bright.jpg"].flags == [HygieneFlag.overexposed]
    assert images["bright.jpg"].action == Action.review
    assert images["small.jpg"].flags == [HygieneFlag.low_resolution]
    assert images["broken.jpg"].flags == [HygieneFlag.undecodable]
    assert images["broken.jpg"].action == Action.drop


def test_exif_intrinsics_are_read(report) -> None:
    images, _ = report
    found = images["exif.jpg"]
    assert (found.camera_make, found.camera_model) == ("Canon", "EOS R5")
    assert (found.focal_length_mm, found.focal_length_35mm) == (24.0, 24.0)
    assert images["sharp_1.jpg"].focal_length_mm is None


def test_near_duplicates_are_grouped_and_all_but_one_dropped(report) -> None:
    images, found = report
    assert len(found.duplicate_groups) == 1
    group = found.duplicate_groups[0]
    assert set(group.images) == {"sharp_0.jpg", "again.jpg"}
    dropped = next(name for name in group.images if name != group.keep)
    assert images[dropped].action == Action.drop
    assert HygieneFlag.near_duplicate in images[dropped].flags
    assert images[group.keep].duplicate_group == group.id
