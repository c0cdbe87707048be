"""A model's towers on ONNX Runtime, for CPU workers (``CLIPQ_CLIP_RUNTIME=onnx``).

Any family (:mod:`clipcore.families`) whose towers trace to a fixed graph is exported: each
tower is exported once per model with ``torch.onnx.export`` (opset 18, batch and text
length dynamic) into a cache folder named by a fingerprint of the weights and of the
exporting libraries, so a restarted worker, or another on the same volume, loads the
files instead of exporting again; a worker exports while it loads its model, before it
announces itself ready, never inside a job. The towers give what the family's
``image_features`` / ``text_features`` give (unnormalised embeddings): :mod:`clipcore.encode`
treats both runtimes alike. Measured on ViT-B/32-sized random weights (2 AVX2 cores, batch 32):
minimum cosine to PyTorch 0.9999998, 16.1-17.0 against 11.6 images/s (``bench/cpu_runtimes.py``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from PIL import Image

from clipcore.families import Family

RUNTIMES = ("torch", "onnx")
OPSET = 18


class OnnxTowers:
    """The two exported towers, each an ONNX Runtime session (thread-safe to run)."""

    def __init__(self, folder: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.folder = folder
        self.image = ort.InferenceSession(str(folder / "image.onnx"), options, providers=providers)
        self.text = ort.InferenceSession(str(folder / "text.onnx"), options, providers=providers)
        self.text_inputs = [given.name for given in self.text.get_inputs()]

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixels = pixel_values.float().contiguous().numpy()
        return torch.from_numpy(self.image.run(None, {"pixel_values": pixels})[0])

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: tokens[name].to(torch.int64).numpy() for name in self.text_inputs}
        return torch.from_numpy(self.text.run(None, feeds)[0])


def onnx_towers(family: Family, cache: Path, threads: int) -> OnnxTowers:
    """The model's towers from ``cache``, exported there first if they are not yet."""
    folder = cache / fingerprint(family)
    if not (folder / "text.onnx").exists():
        export_towers(family, folder)
    return OnnxTowers(folder, threads)


# Real sentences: a CLIP text tower pools at each one's end-of-text token, which placeholder
# ids would not hold (the export would then pool one fixed position).
EXAMPLE_TEXTS = ["a photo of a cat.", "a small red circle beside a large blue square."]


def fingerprint(family: Family) -> str:
    """A name for the export: the family, its weights, and what exports them."""
    libraries = " ".join(_version(name) for name in ("transformers", "open_clip_torch"))
    digest = hashlib.sha256(f"{family.name} {torch.__version__} {libraries} {OPSET}".encode())
    for name, tensor in sorted(family.module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "-"


def export_towers(family: Family, folder: Path) -> None:
    """Export both towers into ``folder``: written aside, then renamed into place, so that
    processes exporting the same model at once leave one whole copy.

    The examples are the family's own pre-processing of two pictures and two sentences,
    so each tower is traced on inputs shaped as in use. Batch is dynamic; text length too
    where the family pads to the longest text (CLIP) rather than to its context (SigLIP).
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    pixels = family.preprocess([Image.new("RGB", (64, 48), "red"), Image.new("RGB", (40, 60))])
    tokens = family.tokenize(EXAMPLE_TEXTS)
    names = sorted(tokens)
    padded_to_longest = family.tokenize(["a"])[names[0]].shape[1] != tokens[names[0]].shape[1]
    batch = torch.export.Dim("batch")
    text_axes = {0: batch}
    if padded_to_longest:
        text_axes[1] = torch.export.Dim("length", max=family.shape.context_length)
    try:
        with torch.no_grad(), family.export_mode():
            image_axes = {"pixel_values": {0: batch}}
            _export(
                _ImageTower(family), (pixels,), ["pixel_values"], image_axes, staging / "image.onnx"
            )
            inputs = tuple(tokens[name] for name in names)
            text_axes_by_arg = {"tokens": tuple(text_axes for _ in names)}
            _export(
                _TextTower(family, names), inputs, names, text_axes_by_arg, staging / "text.onnx"
            )
        try:
            os.rename(staging, folder)
        except OSError:  # another process finished first: its copy is as good
            if not (folder / "text.onnx").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export(tower: torch.nn.Module, args: tuple, names: list[str], axes: dict, path: Path) -> None:
    torch.onnx.export(
        tower.eval(),
        args,
        str(path),
        input_names=names,
        output_names=["features"],
        dynamic_shapes=axes,
        opset_version=OPSET,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


class _ImageTower(torch.nn.Module):
    def __init__(self, family: Family) -> None:
        super().__init__()
        self.model = family.module
        self.family = family

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.family.image_features(pixel_values)


class _TextTower(torch.nn.Module):
    def __init__(self, family: Family, names: list[str]) -> None:
        super().__init__()
        self.model = family.module
        self.family = family
        self.names = names

    def forward(self, *tokens: torch.Tensor) -> torch.Tensor:
        return self.family.text_features(dict(zip(self.names, tokens, strict=True)))
