"""Loading a CLIP-like model once per process, whatever its family.

A model string (:mod:`clipcore.model_names`) names the model and its library:
``embedded`` (the small CLIP shipped inside clipcore), ``hf:`` (transformers' CLIP, SigLIP
or SigLIP2, from a hub id or a folder) or ``open_clip:``; bare hub ids and folders keep
working. Each family (:mod:`clipcore.families`) loads through its library's ordinary
code path; on a CPU the towers may then run on ONNX Runtime (:mod:`clipcore.onnx_towers`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch

from clipcore.domain import DomainReference, load_reference
from clipcore.errors import ModelLoadError
from clipcore.families import Family, Scoring, load_family
from clipcore.model_names import Library, parse_model_name

if TYPE_CHECKING:
    from clipcore.device_images import ImageRecipe
    from clipcore.onnx_towers import Towers

log = logging.getLogger(__name__)

DEFAULT_ONNX_DIR = Path("~/.cache/clipq/onnx")
EMBEDDED_MODEL_ID = "embedded:clip-tiny"


def embedded_clip_dir() -> Path:
    from clipcore.models import EMBEDDED_CLIP_DIR

    return EMBEDDED_CLIP_DIR


def resolve_model_source(spec: str) -> str:
    """Where a transformers model string's library loads from: a folder path or a hub id."""
    name = parse_model_name(spec)
    if name.embedded:
        return str(embedded_clip_dir())
    if name.library == Library.open_clip:
        return name.name
    path = Path(name.name).expanduser()
    if path.exists():
        return str(path)
    if name.name.startswith((".", "/", "~")) or name.name.count("/") > 1:
        raise ModelLoadError(
            f"model folder {name.name!r} does not exist; set CLIPQ_CLIP_MODEL to a folder "
            "saved with save_pretrained, a hub id, 'open_clip:…' or 'embedded'"
        )
    return name.name


def select_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


@dataclass(frozen=True)
class LoadedClip:
    """A model ready for inference: its family (inputs, towers, scoring) and where it runs."""

    family: Family
    model_id: str
    device: torch.device
    dtype: torch.dtype
    # what the model knows, as images (clipcore.domain); None: no reference, no domain check
    domain: DomainReference | None = None
    # the towers on ONNX Runtime or OpenVINO (clipcore.onnx_towers); None: torch's
    towers: Towers | None = None
    runtime: str = "torch"  # what runs the towers: torch, onnx, onnx-int8 or openvino
    # set: uploads are decoded and pre-processed on the device (clipcore.device_images)
    device_recipe: ImageRecipe | None = None

    @property
    def embedding_dim(self) -> int:
        return self.family.shape.embedding_dim

    @property
    def scoring(self) -> Scoring:
        return self.family.scoring


def load_clip(
    spec: str,
    device: str = "auto",
    domain_reference: str = "",
    runtime: str = "torch",
    onnx_dir: str = "",
    device_decode: bool = True,
) -> LoadedClip:
    """Load the model ``spec`` names, on ``device``, in fp16 on a GPU.

    The domain reference comes from ``domain_reference`` (a folder) when given, else from
    the model's own folder when it has one (the embedded model does). On a CPU, ``runtime``
    "onnx", "onnx-int8" or "openvino" ("auto": "onnx") runs the towers off torch, exported
    into ``onnx_dir`` once per model (:mod:`clipcore.onnx_towers`); a GPU keeps torch's, as
    does a family that cannot be exported (SigLIP2's NaFlex), which is logged. On a GPU,
    with ``device_decode``, uploads are decoded and resized there (:mod:`.device_images`)
    where the family's pre-processing is a plain recipe.
    """
    name = parse_model_name(spec)
    source = resolve_model_source(spec)
    target = select_device(device)
    dtype = torch.float16 if target.type == "cuda" else torch.float32
    family = load_family(name, source, target, dtype)
    model_id = EMBEDDED_MODEL_ID if name.embedded else spec
    folder = domain_reference or (str(family.folder) if family.folder is not None else "")
    domain = load_reference(folder) if folder else None
    if domain_reference and domain is None:
        raise ModelLoadError(
            f"no domain reference in {domain_reference!r} (CLIPQ_CLIP_DOMAIN_REFERENCE); "
            "build one with python -m clipcore.domain"
        )
    towers, used = None, "torch"
    if runtime == "auto":
        runtime = "onnx" if target.type == "cpu" else "torch"
    if runtime != "torch" and target.type == "cpu":
        if family.onnx_exportable:
            from clipcore.onnx_towers import cpu_towers

            cache = Path(onnx_dir).expanduser() if onnx_dir else DEFAULT_ONNX_DIR.expanduser()
            towers, used = cpu_towers(family, cache, torch.get_num_threads(), runtime)
        else:
            log.warning("%s (%s) has no ONNX export; its towers run on torch", spec, family.name)
    recipe = family.image_recipe() if device_decode and target.type == "cuda" else None
    return LoadedClip(family, model_id, target, dtype, domain, towers, used, recipe)


class ClipLoad(NamedTuple):
    """How a CLIP is loaded: :func:`load_clip`'s arguments, and a :class:`ClipCache` key."""

    spec: str
    device: str = "auto"
    domain_reference: str = ""
    runtime: str = "torch"
    onnx_dir: str = ""
    device_decode: bool = True


class ClipCache:
    """The models this process has loaded, one per way of loading; loaded on first use."""

    def __init__(self) -> None:
        self._models: dict[ClipLoad, LoadedClip] = {}
        self._lock = threading.Lock()

    def get(self, load: ClipLoad) -> LoadedClip:
        with self._lock:
            if load not in self._models:
                self._models[load] = load_clip(*load)
            return self._models[load]

    def loaded(self, load: ClipLoad) -> LoadedClip | None:
        """The model loaded that way if this process has it already; never loads."""
        with self._lock:
            return self._models.get(load)
