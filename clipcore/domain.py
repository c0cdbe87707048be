"""Does an image look like anything the loaded model can judge?

A CLIP answers every image, including images unlike anything it was trained on: the
embedded demo model, which knows coloured shapes, calls a coffee cup "dog" with 97 %.
A softmax cannot say so (it is normalised over the labels it is given), and the image's
similarity to text prompts cannot either (photographs score *higher* on the demo model's
shape prompts than shapes do). What does separate them is where the image lands among
images the model does know: a reference set of in-domain image embeddings, made once per
model, and the mean cosine of an image to its ``k`` nearest references.

The threshold is a low quantile (``quantile``, default 1 %) of the same score of the
references themselves, each left out of its own neighbours: by construction about 1 % of
images like the references are flagged, and images far from all of them are. For the
embedded model the references are scenes of its own world (``clipcore.lab.reference``
renders them); for any other CLIP, ``python -m clipcore.domain`` builds a reference from a
folder of images its deployment considers ordinary.

A reference is two files in a folder (the model's own, or one named by a setting):
``domain.json`` with a ``"reference"`` entry (``k``, ``quantile``, ``threshold``, how it
was made) and ``reference.safetensors`` with the unit embeddings (fp16).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from clipcore.domain_check import DomainCheck

DOMAIN_FILE = "domain.json"
REFERENCE_FILE = "reference.safetensors"
DEFAULT_K = 5
DEFAULT_QUANTILE = 0.01


@dataclass(frozen=True)
class DomainReference:
    embeddings: torch.Tensor  # (n, dim) unit rows
    k: int
    threshold: float
    made_from: str

    def scores(self, images: torch.Tensor) -> torch.Tensor:
        """Mean cosine of each unit image embedding to its ``k`` nearest references."""
        references = self.embeddings.to(images.device, images.dtype)
        similarity = images @ references.T
        return similarity.topk(min(self.k, len(references)), dim=1).values.mean(dim=1)

    def check(self, images: torch.Tensor) -> list[DomainCheck]:
        return [
            DomainCheck(
                score=round(s, 4), threshold=round(self.threshold, 4), in_domain=s >= self.threshold
            )
            for s in self.scores(images).float().tolist()
        ]


def build_reference(
    embeddings: torch.Tensor,
    made_from: str,
    k: int = DEFAULT_K,
    quantile: float = DEFAULT_QUANTILE,
) -> DomainReference:
    """A reference from unit embeddings; the threshold from their leave-one-out scores."""
    embeddings = embeddings.float()
    similarity = embeddings @ embeddings.T
    similarity.fill_diagonal_(-2.0)  # an image is not its own neighbour
    own = similarity.topk(min(k, len(embeddings) - 1), dim=1).values.mean(dim=1)
    threshold = float(torch.quantile(own, quantile))
    return DomainReference(embeddings.half(), k, threshold, made_from)


def save_reference(reference: DomainReference, folder: Path, quantile: float) -> None:
    """Write the reference into ``folder``, keeping whatever else ``domain.json`` holds."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": reference.embeddings.contiguous()}, str(folder / REFERENCE_FILE))
    path = folder / DOMAIN_FILE
    described = json.loads(path.read_text()) if path.exists() else {}
    described["reference"] = {
        "k": reference.k,
        "quantile": quantile,
        "threshold": round(reference.threshold, 6),
        "images": len(reference.embeddings),
        "made_from": reference.made_from,
    }
    path.write_text(json.dumps(described, indent=2) + "\n")


def load_reference(folder: str | Path) -> DomainReference | None:
    """The reference kept in ``folder``, or None when it holds none."""
    folder = Path(folder)
    path = folder / DOMAIN_FILE
    if not (path.is_file() and (folder / REFERENCE_FILE).is_file()):
        return None
    entry = json.loads(path.read_text()).get("reference")
    if not entry:
        return None
    embeddings = load_file(str(folder / REFERENCE_FILE))["embeddings"]
    return DomainReference(
        embeddings, int(entry["k"]), float(entry["threshold"]), str(entry["made_from"])
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m clipcore.domain --clip MODEL --images DIR --out DIR``."""
    from PIL import Image
    from tqdm import tqdm

    from clipcore.clip_model import load_clip
    from clipcore.encode import embed_images

    parser = argparse.ArgumentParser(
        prog="python -m clipcore.domain",
        description="Build a domain reference for a CLIP from a folder of ordinary images.",
    )
    parser.add_argument("--clip", required=True, help="hub id, folder or 'embedded'")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the two files")
    parser.add_argument("--k", type=int, default=DEFAULT_K)
    parser.add_argument("--quantile", type=float, default=DEFAULT_QUANTILE)
    args = parser.parse_args(argv)
    clip = load_clip(args.clip)
    paths = sorted(p for p in args.images.rglob("*") if p.is_file())
    parts = []
    for start in tqdm(range(0, len(paths), 64), desc="embedding", unit="batch"):
        batch = []
        for path in paths[start : start + 64]:
            try:
                batch.append(Image.open(path).convert("RGB"))
            except OSError:
                continue  # not an image
        if batch:
            parts.append(embed_images(clip, batch).cpu())
    if not parts:
        parser.error(f"no readable images under {args.images}")
    made_from = f"{sum(len(p) for p in parts)} images of {args.images.name} ({args.clip})"
    reference = build_reference(torch.cat(parts), made_from, args.k, args.quantile)
    save_reference(reference, args.out, args.quantile)
    print(f"threshold {reference.threshold:.4f} from {made_from}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
