"""Loading CLIP through the ordinary Hugging Face code path, once per process.

A model spec is ``embedded`` (the small CLIP shipped inside clipcore), a
local folder, or a hub id such as ``openai/clip-vit-base-patch32``. All three
go through ``CLIPModel.from_pretrained`` / ``CLIPProcessor.from_pretrained``; on a CPU
the towers may then run on ONNX Runtime instead (:mod:`clipcore.onnx_towers`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from transformers import CLIPModel, CLIPProcessor
from transformers.utils import logging as hf_logging

from clipcore.domain import DomainReference, load_reference
from clipcore.errors import ModelLoadError

if TYPE_CHECKING:
    from clipcore.onnx_towers import OnnxTowers

EMBEDDED = "embedded"
DEFAULT_ONNX_DIR = Path("~/.cache/clipq/onnx")


def embedded_clip_dir() -> Path:
    from clipcore.models import EMBEDDED_CLIP_DIR

    return EMBEDDED_CLIP_DIR


def resolve_model_source(spec: str) -> str:
    """Turn a model spec into what ``from_pretrained`` takes: a folder path or a hub id."""
    if spec in ("", EMBEDDED):
        return str(embedded_clip_dir())
    path = Path(spec).expanduser()
    if path.exists():
        return str(path)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelLoadError(
            f"CLIP model folder {spec!r} does not exist; set CLIPQ_CLIP_MODEL to a folder "
            "saved with save_pretrained, a hub id, or 'embedded'"
        )
    return spec


def select_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


@dataclass(frozen=True)
class LoadedClip:
    """A CLIP model ready for inference, with what is needed to feed it."""

    model: CLIPModel
    processor: CLIPProcessor
    model_id: str
    device: torch.device
    dtype: torch.dtype
    # what the model knows, as images (clipcore.domain); None: no reference, no domain check
    domain: DomainReference | None = None
    # the towers on ONNX Runtime (clipcore.onnx_towers); None: the forward passes are torch's
    towers: OnnxTowers | None = None

    @property
    def embedding_dim(self) -> int:
        return self.model.config.projection_dim or 0

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())


def load_clip(
    spec: str,
    device: str = "auto",
    domain_reference: str = "",
    runtime: str = "torch",
    onnx_dir: str = "",
) -> LoadedClip:
    """Load model and processor from ``spec``, on ``device``, in fp16 on a GPU.

    The domain reference comes from ``domain_reference`` (a folder) when given, else from
    the model's own folder when it has one (the embedded model does). ``runtime`` "onnx"
    runs the towers on ONNX Runtime on a CPU, exported into ``onnx_dir`` once per model
    (:mod:`clipcore.onnx_towers`); a GPU keeps torch's.
    """
    source = resolve_model_source(spec)
    target = select_device(device)
    dtype = torch.float16 if target.type == "cuda" else torch.float32
    hf_logging.disable_progress_bar()  # "Loading weights" bars are noise in logs and the CLI
    try:
        model = CLIPModel.from_pretrained(source, dtype=dtype)
        processor = CLIPProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load CLIP from {spec!r} ({exc}); check CLIPQ_CLIP_MODEL, and for a hub id "
            "that the machine can reach the hub or has the model in its cache"
        ) from exc
    model.eval().to(target)
    model_id = "embedded:clip-tiny" if spec in ("", EMBEDDED) else spec
    folder = domain_reference or (source if Path(source).is_dir() else "")
    domain = load_reference(folder) if folder else None
    if domain_reference and domain is None:
        raise ModelLoadError(
            f"no domain reference in {domain_reference!r} (CLIPQ_CLIP_DOMAIN_REFERENCE); "
            "build one with python -m clipcore.domain"
        )
    towers = None
    if runtime == "onnx" and target.type == "cpu":
        from clipcore.onnx_towers import onnx_towers

        cache = Path(onnx_dir).expanduser() if onnx_dir else DEFAULT_ONNX_DIR.expanduser()
        towers = onnx_towers(model, processor, cache, torch.get_num_threads())
    return LoadedClip(model, processor, model_id, target, dtype, domain, towers)


class ClipLoad(NamedTuple):
    """How a CLIP is loaded: :func:`load_clip`'s arguments, and a :class:`ClipCache` key."""

    spec: str
    device: str = "auto"
    domain_reference: str = ""
    runtime: str = "torch"
    onnx_dir: str = ""


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
