"""Decoding and pre-processing on the model's device, for a GPU worker.

On a GPU the forward pass is fast enough that Pillow's decode and resize on the CPU become
the ceiling (clip-retrieval reports its 2,500 images/s per A100 is set by CPU resizing).
Here JPEGs are decoded in one batched call on the GPU (``torchvision.io.decode_jpeg(...,
device="cuda")``, nvJPEG), other formats on the CPU as usual and copied over from pinned
memory, and every picture is resized, centre-cropped and normalised with tensor ops on the
device, following the family's :class:`ImageRecipe`. Headers are checked first, as on the
CPU path (format, size, pixel limit), so a bad file is still that file's problem.

The same functions run on a CPU (``device="cpu"``), which is how they are tested against
each family's own processor here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg

from clipcore.errors import ClipqError, InvalidImage
from clipcore.images import decode_image, inspect_image
from clipcore.problem import Problem


@dataclass(frozen=True)
class ImageRecipe:
    """A family's pre-processing as tensor ops: the shorter side resized to ``size`` and the
    centre cut (``crop``), or the picture squashed to ``size`` × ``size``; then normalised."""

    size: int
    crop: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"  # or "bilinear"


def decode_on_device(
    data: Sequence[bytes], filenames: Sequence[str], device: torch.device, max_pixels: int
) -> list[torch.Tensor | Problem]:
    """Each upload as a (3, H, W) uint8 tensor on ``device`` (EXIF orientation applied), or
    the problem that stopped it. JPEGs are decoded together on the device; a JPEG the
    device's decoder refuses, and every other format, is decoded on the CPU."""
    decoded: list[torch.Tensor | Problem | None] = [None] * len(data)
    jpegs: list[int] = []
    for position, (blob, filename) in enumerate(zip(data, filenames, strict=True)):
        try:
            info = inspect_image(blob, filename, max_pixels=max_pixels)
        except ClipqError as exc:
            decoded[position] = exc.to_problem()
            continue
        if info.format == "JPEG":
            jpegs.append(position)
    if jpegs:
        encoded = [torch.frombuffer(bytearray(data[i]), dtype=torch.uint8) for i in jpegs]
        try:
            pictures = decode_jpeg(
                encoded, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True
            )
        except RuntimeError:  # one bad file fails the batch: decode them one by one
            pictures = [_one_jpeg(blob, device) for blob in encoded]
        for position, picture in zip(jpegs, pictures, strict=True):
            decoded[position] = picture
    for position, item in enumerate(decoded):
        if item is None:
            decoded[position] = _on_cpu(data[position], filenames[position], device, max_pixels)
    return decoded  # type: ignore[return-value]


def _one_jpeg(blob: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    try:
        return decode_jpeg(blob, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
    except RuntimeError:
        return None  # left to the CPU decoder, which names what is wrong


def _on_cpu(
    data: bytes, filename: str, device: torch.device, max_pixels: int
) -> torch.Tensor | Problem:
    try:
        picture = decode_image(data, filename, max_pixels=max_pixels)
    except InvalidImage as exc:
        return exc.to_problem()
    pixels = torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8)
    pixels = pixels.view(picture.height, picture.width, 3).permute(2, 0, 1)
    if device.type == "cuda":
        pixels = pixels.pin_memory()
    return pixels.to(device, non_blocking=True)


def preprocess_on_device(
    pictures: Sequence[torch.Tensor], recipe: ImageRecipe, dtype: torch.dtype
) -> torch.Tensor:
    """(3, H, W) uint8 pictures on one device into the vision tower's (N, 3, S, S) batch."""
    size = recipe.size
    resized = []
    for picture in pictures:
        batch = picture.unsqueeze(0).float()
        height, width = batch.shape[-2:]
        if recipe.crop:  # as transformers: the longer side int()-scaled, the centre cut
            short, long = (height, width) if height <= width else (width, height)
            scaled = max(size, int(size * long / short))
            target = (size, scaled) if height <= width else (scaled, size)
        else:
            target = (size, size)
        batch = F.interpolate(
            batch, size=target, mode=recipe.interpolation, antialias=True, align_corners=False
        )
        top, left = (target[0] - size) // 2, (target[1] - size) // 2
        resized.append(batch[..., top : top + size, left : left + size])
    pixels = torch.cat(resized).clamp_(0, 255).div_(255)
    device = pixels.device
    mean = torch.tensor(recipe.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(recipe.std, device=device).view(1, 3, 1, 1)
    return ((pixels - mean) / std).to(dtype)
