"""Model strings: one string names a model and the library that loads it (no torch here).

As open_clip names its sources (``hf-hub:``, ``local-dir:``), a clipq model string starts
with its library:

- ``embedded``: the small CLIP shipped inside clipcore;
- ``hf:<hub id or folder>``: Hugging Face ``transformers`` (CLIP, SigLIP or SigLIP2, as
  the checkpoint's ``config.json`` says), e.g. ``hf:openai/clip-vit-base-patch32``;
- ``open_clip:<name>``: ``open_clip_torch``: ``open_clip:hf-hub:timm/ViT-B-16-SigLIP2``,
  ``open_clip:local-dir:/models/dfn`` (or a bare folder), or a built-in architecture with
  its pretrained tag, ``open_clip:ViT-B-32/laion2b_s34b_b79k``.

Bare strings keep working: a folder holding ``open_clip_config.json`` is open_clip's, any
other folder or hub id is transformers'.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from clipcore.errors import ModelLoadError

EMBEDDED = "embedded"
OPEN_CLIP_CONFIG = "open_clip_config.json"


class Library(StrEnum):
    transformers = "hf"
    open_clip = "open_clip"


@dataclass(frozen=True)
class ModelName:
    """A parsed model string: the library that loads it, and what that library is given."""

    library: Library
    name: str  # a hub id or folder (hf); an open_clip model name with its schema
    embedded: bool = False

    @property
    def canonical(self) -> str:
        """The string that names this model everywhere clipq shows or compares one."""
        return EMBEDDED if self.embedded else f"{self.library}:{self.name}"


def model_key(spec: str) -> str:
    """A model string as every process of a deployment writes it, for routing jobs and
    binding collections: 'embedded' for its spellings, the bare id for 'hf:<id>'. No file
    is looked at (the API has none), unlike :func:`parse_model_name`."""
    spec = spec.strip()
    return EMBEDDED if spec in ("", EMBEDDED) else spec.removeprefix(f"{Library.transformers}:")


def parse_model_name(spec: str) -> ModelName:
    """Parse a model string (see the module's docstring); :class:`ModelLoadError` if empty."""
    spec = spec.strip()
    if spec in ("", EMBEDDED):
        return ModelName(Library.transformers, EMBEDDED, embedded=True)
    library, _, rest = spec.partition(":")
    if library in (Library.transformers, Library.open_clip) and rest:
        if library == Library.open_clip:
            return ModelName(Library.open_clip, _open_clip_name(rest))
        return ModelName(Library.transformers, rest)
    if (Path(spec).expanduser() / OPEN_CLIP_CONFIG).is_file():
        return ModelName(Library.open_clip, _open_clip_name(spec))
    return ModelName(Library.transformers, spec)


def _open_clip_name(rest: str) -> str:
    """open_clip's own name for it: a bare folder becomes ``local-dir:<absolute path>``."""
    if rest.startswith(("hf-hub:", "local-dir:")):
        return rest
    if rest.startswith((".", "/", "~")) or Path(rest).expanduser().is_dir():
        return f"local-dir:{Path(rest).expanduser().resolve()}"
    if "/" not in rest:
        raise ModelLoadError(
            f"open_clip model {rest!r} names no weights: give 'architecture/pretrained-tag' "
            "(e.g. open_clip:ViT-B-32/laion2b_s34b_b79k), 'hf-hub:org/repo' or a folder"
        )
    return rest
