"""Reconstruction plans: from a dataset's CLIP embeddings and pixels to a plan that runs.

* :mod:`~clipcore.plans.schemas` — what a plan holds (pydantic only; the API imports it);
* :mod:`~clipcore.plans.shortlist` — which image pairs to match (k nearest neighbours of the
  global embeddings, optionally merged with a sequential window);
* :mod:`~clipcore.plans.hygiene` — per-image checks (sharpness, exposure, resolution, EXIF
  intrinsics) and near-duplicate groups, each with a suggested action;
* :mod:`~clipcore.plans.bundle` — the ready-to-run artefacts (hloc pairs file, hloc / COLMAP /
  GLOMAP scripts, a deep-image-matching config, the plan's README) as one archive.
"""
