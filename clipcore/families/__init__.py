"""Model families behind one interface (:class:`Family`): transformers' CLIP, SigLIP and
SigLIP2 (:mod:`.hf`) and open_clip's models (:mod:`.openclip`), named by model strings
(:mod:`clipcore.model_names`)."""

from __future__ import annotations

import torch

from clipcore.families.base import Family, ModelShape, Scoring, ScoringRule
from clipcore.model_names import Library, ModelName

__all__ = ["Family", "ModelShape", "Scoring", "ScoringRule", "load_family"]


def load_family(name: ModelName, source: str, device: torch.device, dtype: torch.dtype) -> Family:
    """The model ``name`` names, loaded from ``source`` (its folder or id), on ``device``."""
    if name.library == Library.open_clip:
        from clipcore.families.openclip import load_open_clip

        return load_open_clip(name.name, device, dtype)
    from clipcore.families.hf import load_transformers

    family = load_transformers(source, dtype)
    family.module.to(device)
    return family
