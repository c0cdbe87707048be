"""Object proposals with torchvision Mask R-CNN: the embedded tiny model or real weights.

``load_detector(spec, device)`` accepts

- ``""`` or ``"embedded"``: the shipped ``clipcore/models/maskrcnn-tiny`` folder;
- a local folder of the same form (``config.json`` for ``build_tiny_maskrcnn`` +
  ``model.safetensors`` state dict);
- a local ``.pth`` / ``.pt`` file: a state dict for torchvision's
  ``maskrcnn_resnet50_fpn_v2`` (the number of classes is read from the state dict);
- ``"torchvision:COCO_V1"``: ``maskrcnn_resnet50_fpn_v2`` with torchvision's COCO weights
  (downloaded by torchvision into its cache, or found there).

``propose_regions(model, images, top_n, score_threshold)`` runs it on PIL images and returns
class-agnostic regions (box, score, mask), best first. Nothing is loaded at import time.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

DEFAULT_CONFIG: dict = {
    "architecture": "tiny-maskrcnn",
    "backbone_channels": [32, 32, 64, 64, 64, 64, 64],
    "backbone_strides": [2, 1, 2, 1, 2, 1, 1],
    "anchor_sizes": [16, 24, 32, 48, 64, 96],
    "aspect_ratios": [0.5, 1.0, 2.0],
    "box_representation": 128,
    "mask_layers": [64, 64],
    "num_classes": 2,  # background + "object": class-agnostic proposals
    "min_size": 128,
    "max_size": 256,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.25, 0.25, 0.25],
    "box_score_thresh": 0.0,
    "box_nms_thresh": 0.5,
    "box_detections_per_img": 50,
    "rpn_pre_nms_top_n_train": 600,
    "rpn_post_nms_top_n_train": 300,
    "rpn_pre_nms_top_n_test": 300,
    "rpn_post_nms_top_n_test": 100,
    "box_batch_size_per_image": 128,
}


@dataclass
class Region:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels
    score: float
    mask: np.ndarray  # bool, H x W of the image


class TinyBackbone(nn.Sequential):
    """Plain conv stack (3x3 conv, BatchNorm, ReLU), one feature map at stride 8."""

    def __init__(self, channels: list[int], strides: list[int]):
        layers: list[nn.Module] = []
        c_in = 3
        for c, s in zip(channels, strides, strict=True):
            layers += [
                nn.Conv2d(c_in, c, 3, s, 1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            ]
            c_in = c
        super().__init__(*layers)
        self.out_channels = c_in


def build_tiny_maskrcnn(config: dict | None = None):
    """A small torchvision ``MaskRCNN`` from a config dict (``DEFAULT_CONFIG`` keys)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    cfg = {**DEFAULT_CONFIG, **(config or {})}
    backbone = TinyBackbone(cfg["backbone_channels"], cfg["backbone_strides"])
    c = backbone.out_channels
    rep = cfg["box_representation"]
    anchors = AnchorGenerator(
        sizes=(tuple(cfg["anchor_sizes"]),), aspect_ratios=(tuple(cfg["aspect_ratios"]),)
    )
    mask_layers = cfg["mask_layers"]
    return MaskRCNN(
        backbone,
        num_classes=None,  # predictors are given
        min_size=cfg["min_size"],
        max_size=cfg["max_size"],
        image_mean=cfg["image_mean"],
        image_std=cfg["image_std"],
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=cfg["rpn_pre_nms_top_n_train"],
        rpn_post_nms_top_n_train=cfg["rpn_post_nms_top_n_train"],
        rpn_pre_nms_top_n_test=cfg["rpn_pre_nms_top_n_test"],
        rpn_post_nms_top_n_test=cfg["rpn_post_nms_top_n_test"],
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        box_head=TwoMLPHead(c * 49, rep),
        box_predictor=FastRCNNPredictor(rep, cfg["num_classes"]),
        box_score_thresh=cfg["box_score_thresh"],
        box_nms_thresh=cfg["box_nms_thresh"],
        box_detections_per_img=cfg["box_detections_per_img"],
        box_batch_size_per_image=cfg["box_batch_size_per_image"],
        mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
        mask_head=MaskRCNNHeads(c, mask_layers, 1),
        mask_predictor=MaskRCNNPredictor(mask_layers[-1], mask_layers[-1], cfg["num_classes"]),
    )


def save_tiny_detector(model, config: dict, folder: Path, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = OrderedDict((k, v.detach().contiguous().clone()) for k, v in model.state_dict().items())
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(
        json.dumps({**DEFAULT_CONFIG, **config, **(extra or {})}, indent=2) + "\n"
    )


def _load_folder(folder: Path):
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text())
    model = build_tiny_maskrcnn({k: v for k, v in config.items() if k in DEFAULT_CONFIG})
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model


def load_detector(spec: str, device: str | torch.device = "cpu"):
    """Load a Mask R-CNN by spec (see the module docstring), in eval mode on ``device``."""
    from clipcore.models import EMBEDDED_DETECTOR_DIR

    spec = (spec or "").strip()
    if spec in ("", "embedded"):
        model = _load_folder(EMBEDDED_DETECTOR_DIR)
    elif spec.startswith("torchvision:"):
        from torchvision.models.detection import (
            MaskRCNN_ResNet50_FPN_V2_Weights,
            maskrcnn_resnet50_fpn_v2,
        )

        name = spec.split(":", 1)[1]
        weights = MaskRCNN_ResNet50_FPN_V2_Weights[name]
        model = maskrcnn_resnet50_fpn_v2(weights=weights)
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            if not (path / "model.safetensors").exists():
                raise FileNotFoundError(f"{path} has no model.safetensors")
            model = _load_folder(path)
        elif path.is_file() and path.suffix in (".pth", ".pt"):
            from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
                state = state["model"]
            n_classes = state["roi_heads.box_predictor.cls_score.weight"].shape[0]
            model = maskrcnn_resnet50_fpn_v2(
                weights=None, weights_backbone=None, num_classes=n_classes
            )
            model.load_state_dict(state)
        else:
            raise FileNotFoundError(
                f"no detector at {spec!r} (expected 'embedded', a folder "
                "with config.json + model.safetensors, a .pth state dict "
                "or 'torchvision:COCO_V1')"
            )
    return model.to(device).eval()


def _to_tensor(image) -> torch.Tensor:
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


@torch.no_grad()
def propose_regions(
    model, images: list, top_n: int = 10, score_threshold: float = 0.0
) -> list[list[Region]]:
    """Class-agnostic regions for each PIL image: at most ``top_n``, score >= threshold."""
    model.eval()
    device = next(model.parameters()).device
    tensors = [_to_tensor(im).to(device) for im in images]
    # torchvision drops detections under box_score_thresh; let the caller's threshold decide.
    # It also returns a full-size float mask per detection (for COCO Mask R-CNN, 100 of about
    # 1333 × 1000 per image): ask only for the top_n best, which are the same top_n.
    heads = model.roi_heads
    saved = heads.score_thresh, heads.detections_per_img
    heads.score_thresh = min(saved[0], score_threshold)
    heads.detections_per_img = max(1, min(saved[1], top_n))
    try:
        outputs = model(tensors) if tensors else []
    finally:
        heads.score_thresh, heads.detections_per_img = saved
    result: list[list[Region]] = []
    for out in outputs:
        order = torch.argsort(out["scores"], descending=True)
        regions: list[Region] = []
        for i in order.tolist():
            score = float(out["scores"][i])
            if score < score_threshold or len(regions) >= top_n:
                break
            box = tuple(float(v) for v in out["boxes"][i].tolist())
            mask = (out["masks"][i, 0] > 0.5).cpu().numpy()
            regions.append(Region(box=box, score=score, mask=mask))
        result.append(regions)
    return result
