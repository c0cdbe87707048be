"""The domain reference: built from embeddings, saved beside a model, read back, applied."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from clipcore.domain import build_reference, load_reference, save_reference


def unit(rows: torch.Tensor) -> torch.Tensor:
    return rows / rows.norm(dim=1, keepdim=True)


def clustered(n: int, seed: int) -> torch.Tensor:
    """Points near one direction of a 16-d space: a 'domain'."""
    generator = torch.Generator().manual_seed(seed)
    centre = torch.zeros(16)
    centre[0] = 1.0
    return unit(centre + 0.2 * torch.randn(n, 16, generator=generator))


def prompts() -> torch.Tensor:
    """A bank in which the domain's direction has a prompt of its own."""
    bank = torch.zeros(5, 16)
    for row, axis in enumerate((0, 2, 3, 4, 5)):
        bank[row, axis] = 1.0
    return bank


def test_threshold_flags_about_the_quantile_of_its_own_kind() -> None:
    reference = build_reference(clustered(800, 0), prompts(), "test", k=5, quantile=0.02)
    fresh = reference.check(clustered(2000, 1))
    flagged = sum(not c.in_domain for c in fresh) / len(fresh)
    assert 0.0 < flagged < 0.06


def test_images_far_from_the_reference_are_out_of_domain() -> None:
    reference = build_reference(clustered(500, 0), prompts(), "test")
    away = torch.zeros(16)
    away[1] = 1.0
    far = unit(away + 0.2 * torch.randn(50, 16, generator=torch.Generator().manual_seed(2)))
    checks = reference.check(far)
    assert all(not c.in_domain for c in checks)
    assert all(c.score < c.threshold for c in checks)


def test_images_no_prompt_fits_better_than_the_rest_are_out_of_domain() -> None:
    """Every prompt of the bank fits about as well: the caption margin says so."""
    reference = build_reference(clustered(500, 0), prompts(), "test")
    generator = torch.Generator().manual_seed(3)
    flat = unit(
        clustered(50, 4) * 0.05 + torch.eye(16)[6] + 0.02 * torch.randn(50, 16, generator=generator)
    )
    checks = reference.check(flat)
    assert all(c.caption_margin < c.caption_margin_threshold for c in checks)
    assert all(not c.in_domain for c in checks)


def test_saved_reference_keeps_the_rest_of_domain_json(tmp_path: Path) -> None:
    (tmp_path / "domain.json").write_text(json.dumps({"kind": "embedded-demo"}))
    reference = build_reference(clustered(100, 0), prompts(), "100 test points", k=3, quantile=0.05)
    save_reference(reference, tmp_path, 0.05)
    described = json.loads((tmp_path / "domain.json").read_text())
    assert described["kind"] == "embedded-demo"
    assert described["reference"]["images"] == 100
    loaded = load_reference(tmp_path)
    assert loaded is not None and loaded.k == 3
    assert abs(loaded.threshold - reference.threshold) < 1e-5
    probe = clustered(10, 5)
    assert torch.allclose(loaded.scores(probe), reference.scores(probe), atol=1e-3)
    assert torch.allclose(loaded.margins(probe), reference.margins(probe), atol=1e-3)


def test_a_folder_without_reference_has_none(tmp_path: Path) -> None:
    assert load_reference(tmp_path) is None
    (tmp_path / "domain.json").write_text(json.dumps({"kind": "clip"}))
    assert load_reference(tmp_path) is None


def test_a_reference_built_from_a_folder_of_images(tmp_path: Path) -> None:
    """``python -m clipcore.domain``, as an operator runs it for their own CLIP and images."""
    import numpy as np

    from clipcore.clip_model import load_clip
    from clipcore.domain import main
    from clipcore.encode import embed_images
    from clipcore.lab import world_alt, world_third
    from clipcore.lab.photos import photographs

    images = tmp_path / "ordinary"
    images.mkdir()
    rng = np.random.default_rng(80_000)
    for i in range(300):
        world_alt.render_scene(rng, size=96).image.save(images / f"{i}.png")
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "reference"
    assert main(["--clip", "embedded", "--images", str(images), "--out", str(out)]) == 0
    described = json.loads((out / "domain.json").read_text())
    assert described["reference"]["images"] == 300
    clip = load_clip("embedded", "cpu", domain_reference=str(out))
    assert clip.domain is not None and clip.domain.made_from.startswith("300 images")
    others = [world_third.render_scene(rng, size=96).image for _ in range(100)]
    flagged = sum(not c.in_domain for c in clip.domain.check(embed_images(clip, others)))
    assert flagged <= 10  # images like the reference, drawn by other code
    views = [image for _, image in photographs(crops=1)]
    photos = sum(not c.in_domain for c in clip.domain.check(embed_images(clip, views)))
    # a small reference with a generic prompt bank this model cannot read: the shipped one,
    # with its own prompts, flags 85 % (test_embedded_models)
    assert photos >= 0.3 * len(views)
