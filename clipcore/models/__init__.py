"""clipq's embedded default models (package data, found without network)."""

from pathlib import Path

EMBEDDED_CLIP_DIR = Path(__file__).parent / "clip-tiny"
EMBEDDED_DETECTOR_DIR = Path(__file__).parent / "maskrcnn-tiny"
