"""``python -m worker.prefetch``: download the configured models into their caches, and exit.

Run it where the hub can be reached (for a container, against the model-cache volume), then
carry the cache to an offline host: the worker there finds the weights without a network
(set ``HF_HUB_OFFLINE=1``). The models load through the same code as in a worker.
"""

from __future__ import annotations

import os
import sys

from clipcore.clip_model import load_clip
from clipcore.detector import load_detector
from clipcore.errors import ClipqError
from clipq.settings import get_settings


def main() -> int:
    settings = get_settings()
    try:
        clip = load_clip(settings.clip_model, "cpu")
        print(f"CLIP {clip.model_id}: ready (HF_HOME={os.environ.get('HF_HOME', '~/.cache')})")
        load_detector(settings.resolved_detector_model, "cpu")
    except ClipqError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        print(f"error: the detector could not be fetched: {exc}", file=sys.stderr)
        return 1
    print(
        f"detector {settings.resolved_detector_model}: ready "
        f"(TORCH_HOME={os.environ.get('TORCH_HOME', '~/.cache/torch')})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
