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


def test_threshold_flags_about_the_quantile_of_its_own_kind() -> None:
    reference = build_reference(clustered(800, 0), "test", k=5, quantile=0.02)
    fresh = reference.check(clustered(2000, 1))
    flagged = sum(not c.in_domain for c in fresh) / len(fresh)
    assert 0.0 < flagged < 0.06


def test_images_far_from_the_reference_are_out_of_domain() -> None:
    reference = build_reference(clustered(500, 0), "test")
    away = torch.zeros(16)
    away[1] = 1.0
    far = unit(away + 0.2 * torch.randn(50, 16, generator=torch.Generator().manual_seed(2)))
    checks = reference.check(far)
    assert all(not c.in_domain for c in checks)
    assert all(c.score < c.threshold for c in checks)


def test_saved_reference_keeps_the_rest_of_domain_json(tmp_path: Path) -> None:
    (tmp_path / "domain.json").write_text(json.dumps({"kind": "embedded-demo"}))
    reference = build_reference(clustered(100, 0), "100 test points", k=3, quantile=0.05)
    save_reference(reference, tmp_path, 0.05)
    described = json.loads((tmp_path / "domain.json").read_text())
    assert described["kind"] == "embedded-demo"
    assert described["reference"]["images"] == 100
    loaded = load_reference(tmp_path)
    assert loaded is not None and loaded.k == 3
    assert abs(loaded.threshold - reference.threshold) < 1e-5
    probe = clustered(10, 5)
    assert torch.allclose(loaded.scores(probe), reference.scores(probe), atol=1e-3)


def test_a_folder_without_reference_has_none(tmp_path: Path) -> None:
    assert load_reference(tmp_path) is None
    (tmp_path / "domain.json").write_text(json.dumps({"kind": "clip"}))
    assert load_reference(tmp_path) is None
