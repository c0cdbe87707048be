"""CLIP's image and text towers on ONNX Runtime, for CPU workers (``CLIPQ_CLIP_RUNTIME=onnx``).

Each tower is exported once per model with ``torch.onnx.export`` (opset 18, batch and text
length dynamic) into a cache folder named by a fingerprint of the weights and of the
exporting libraries, so a restarted worker, or another on the same volume, loads the
files instead of exporting again; a worker exports while it loads its model, before it
announces itself ready, never inside a job. The towers give what ``get_image_features`` /
``get_text_features`` give (unnormalised projections): :mod:`clipcore.encode` treats both
runtimes alike. Measured on ViT-B/32-sized random weights (2 AVX2 cores, batch 32):
minimum cosine to PyTorch 0.9999998, 16.1-17.0 against 11.6 images/s (``bench/cpu_runtimes.py``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import CLIPModel, CLIPProcessor

RUNTIMES = ("torch", "onnx")
OPSET = 18


TEXT_INPUTS = ("input_ids", "attention_mask")


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

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixels = pixel_values.float().contiguous().numpy()
        return torch.from_numpy(self.image.run(None, {"pixel_values": pixels})[0])

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: tokens[name].to(torch.int64).numpy() for name in TEXT_INPUTS}
        return torch.from_numpy(self.text.run(None, feeds)[0])


def onnx_towers(
    model: CLIPModel, processor: CLIPProcessor, cache: Path, threads: int
) -> OnnxTowers:
    """The model's towers from ``cache``, exported there first if they are not yet."""
    folder = cache / fingerprint(model)
    if not (folder / "text.onnx").exists():
        size = int(processor.image_processor.crop_size["height"])
        # real sentences: the text tower pools at each one's end-of-text token, which
        # placeholder ids would not hold (the export then pools one fixed position)
        tokens = processor(text=EXAMPLE_TEXTS, return_tensors="pt", padding=True)
        export_towers(model, size, {name: tokens[name] for name in TEXT_INPUTS}, folder)
    return OnnxTowers(folder, threads)


EXAMPLE_TEXTS = ["a photo of a cat.", "a small red circle beside a large blue square."]


def fingerprint(model: CLIPModel) -> str:
    """A name for the export: the weights, and the versions of what exports them."""
    digest = hashlib.sha256(f"{torch.__version__} {transformers.__version__} {OPSET}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def export_towers(
    model: CLIPModel, image_size: int, tokens: dict[str, torch.Tensor], folder: Path
) -> None:
    """Export both towers into ``folder``: written aside, then renamed into place, so that
    processes exporting the same model at once leave one whole copy."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    configs = [model.config, model.config.vision_config, model.config.text_config]
    attention = [config._attn_implementation for config in configs]
    for config in configs:
        config._attn_implementation = "eager"  # exported as plain matmuls: 6% faster
    try:
        batch = torch.export.Dim("batch")
        with torch.no_grad():
            torch.onnx.export(
                _ImageTower(model),
                (torch.randn(2, 3, image_size, image_size),),
                str(staging / "image.onnx"),
                input_names=["pixel_values"],
                output_names=["features"],
                dynamic_shapes={"pixel_values": {0: batch}},
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
            longest = model.config.text_config.max_position_embeddings
            length = torch.export.Dim("length", max=longest)
            torch.onnx.export(
                _TextTower(model),
                tuple(tokens[name] for name in TEXT_INPUTS),
                str(staging / "text.onnx"),
                input_names=list(TEXT_INPUTS),
                output_names=["features"],
                dynamic_shapes={name: {0: batch, 1: length} for name in TEXT_INPUTS},
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        try:
            os.rename(staging, folder)
        except OSError:  # another process finished first: its copy is as good
            if not (folder / "text.onnx").exists():
                raise
    finally:
        for config, implementation in zip(configs, attention, strict=True):
            config._attn_implementation = implementation
        shutil.rmtree(staging, ignore_errors=True)


class _ImageTower(torch.nn.Module):
    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values=pixel_values).pooler_output


class _TextTower(torch.nn.Module):
    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        features = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        return features.pooler_output
