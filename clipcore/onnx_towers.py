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
import json
import logging
import os
import random
import shutil
import tempfile
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image, ImageDraw

from clipcore.families import Family

log = logging.getLogger(__name__)

# "auto": ONNX Runtime on a CPU, torch on a GPU. "onnx-int8": dynamic int8 quantisation,
# used only where its agreement with fp32 holds (:func:`int8_verdict`). "openvino": the same
# export compiled by OpenVINO (fp32, for exact parity).
RUNTIMES = ("auto", "torch", "onnx", "onnx-int8", "openvino")
OPSET = 18
INT8_MIN_MEAN_COSINE = 0.999  # agreement with fp32 that int8 must show to be used


class Towers(Protocol):
    """The two towers on a runtime other than torch, giving what the family's give."""

    folder: Path

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor: ...

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor: ...


class OnnxTowers:
    """The two exported towers, each an ONNX Runtime session (thread-safe to run)."""

    def __init__(self, folder: Path, threads: int, suffix: str = "") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.folder = folder

        def session(tower: str) -> ort.InferenceSession:
            return ort.InferenceSession(
                str(folder / f"{tower}{suffix}.onnx"), options, providers=providers
            )

        self.image, self.text = session("image"), session("text")
        self.text_inputs = [given.name for given in self.text.get_inputs()]

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixels = pixel_values.float().contiguous().numpy()
        return torch.from_numpy(self.image.run(None, {"pixel_values": pixels})[0])

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: tokens[name].to(torch.int64).numpy() for name in self.text_inputs}
        return torch.from_numpy(self.text.run(None, feeds)[0])


class OpenVinoTowers:
    """The exported towers compiled by OpenVINO for the CPU, in fp32 (OpenVINO would pick
    bf16 on a CPU that has it, which moves embeddings). An infer request is not thread-safe,
    so each tower runs one call at a time."""

    def __init__(self, folder: Path, threads: int) -> None:
        import openvino

        core = openvino.Core()
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",  # one batch at a time, all threads on it
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self.folder = folder
        self.image = core.compile_model(str(folder / "image.onnx"), "CPU", config)
        self.text = core.compile_model(str(folder / "text.onnx"), "CPU", config)
        self.text_inputs = [port.get_any_name() for port in self.text.inputs]
        self._requests = {
            "image": (self.image.create_infer_request(), threading.Lock()),
            "text": (self.text.create_infer_request(), threading.Lock()),
        }

    def _run(self, tower: str, feeds: dict) -> torch.Tensor:
        request, lock = self._requests[tower]
        with lock:
            return torch.from_numpy(request.infer(feeds)[0].copy())

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._run("image", {"pixel_values": pixel_values.float().contiguous().numpy()})

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: tokens[name].to(torch.int64).numpy() for name in self.text_inputs}
        return self._run("text", feeds)


def cpu_towers(family: Family, cache: Path, threads: int, runtime: str) -> tuple[Towers, str]:
    """The model's towers on ``runtime`` from ``cache`` (exported there first if they are not
    yet), and the runtime they run on: ``onnx-int8`` falls back to ``onnx`` where int8 does
    not agree with fp32 well enough on this model."""
    folder = cache / fingerprint(family)
    if not (folder / "text.onnx").exists():
        export_towers(family, folder)
    if runtime == "openvino":
        return OpenVinoTowers(folder, threads), runtime
    if runtime == "onnx-int8":
        verdict = int8_verdict(family, folder, threads)
        if verdict["holds"]:
            return OnnxTowers(folder, threads, INT8_SUFFIX), runtime
        log.warning(
            "int8 does not agree with fp32 on this model (mean cosine images %.5f, texts "
            "%.5f < %s): its towers run in fp32 on ONNX Runtime",
            verdict["image_mean_cosine"],
            verdict["text_mean_cosine"],
            INT8_MIN_MEAN_COSINE,
        )
    return OnnxTowers(folder, threads), "onnx"


INT8_SUFFIX = ".int8"
PROBE_TEXTS = [
    "a photo of a dog.",
    "a red circle on a grey background.",
    "two people walking along a beach at sunset",
    "a diagram",
    "the interior of a small kitchen with a window",
    "a green triangle and a blue square",
    "an aerial view of a city",
    "a close-up of a flower",
]


def int8_verdict(family: Family, folder: Path, threads: int) -> dict:
    """Quantise both exported towers (dynamic int8, weights and activations) once, and measure
    once how far they move the embeddings of probe pictures and texts from fp32: int8 is
    used only if the mean cosine of each tower holds :data:`INT8_MIN_MEAN_COSINE`. Kept in
    the export's folder (``int8.json``)."""
    record = folder / "int8.json"
    if record.exists():
        return json.loads(record.read_text())
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for tower in ("image", "text"):
        target = folder / f"{tower}{INT8_SUFFIX}.onnx"
        if not target.exists():
            staging = folder / f".{tower}{INT8_SUFFIX}.{os.getpid()}.onnx"
            quantize_dynamic(folder / f"{tower}.onnx", staging, weight_type=QuantType.QInt8)
            os.replace(staging, target)
    fp32, int8 = OnnxTowers(folder, threads), OnnxTowers(folder, threads, INT8_SUFFIX)
    pixels = family.preprocess(probe_pictures())
    tokens = family.tokenize(PROBE_TEXTS)
    cosine = torch.nn.functional.cosine_similarity
    verdict: dict = {
        "image_mean_cosine": float(
            cosine(fp32.image_features(pixels), int8.image_features(pixels)).mean()
        ),
        "text_mean_cosine": float(
            cosine(fp32.text_features(tokens), int8.text_features(tokens)).mean()
        ),
    }
    verdict["holds"] = min(verdict["image_mean_cosine"], verdict["text_mean_cosine"]) >= (
        INT8_MIN_MEAN_COSINE
    )
    record.write_text(json.dumps(verdict, indent=2) + "\n")
    return verdict


def probe_pictures(count: int = 32, seed: int = 0) -> list[Image.Image]:
    """Deterministic pictures with some structure (a gradient, a few shapes): what int8's
    agreement is measured on, for any model."""
    rng = random.Random(seed)
    pictures = []
    for _ in range(count):
        width, height = rng.choice([(256, 192), (192, 256), (224, 224)])
        top, bottom = (tuple(rng.randrange(256) for _ in range(3)) for _ in range(2))
        mask = Image.linear_gradient("L").resize((width, height))
        picture = Image.composite(
            Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), mask
        )
        draw = ImageDraw.Draw(picture)
        for _ in range(rng.randint(1, 4)):
            x, y = rng.randrange(width), rng.randrange(height)
            size = rng.randint(16, 96)
            colour = tuple(rng.randrange(256) for _ in range(3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x, y, x + size, y + size), fill=colour)
        pictures.append(picture)
    return pictures


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
