"""Does an image look like anything the loaded model can judge?

A CLIP answers every image, including images unlike anything it was trained on: the
embedded demo model, which knows coloured shapes, called a coffee cup "dog" with 97 %.
A softmax cannot say so (it is normalised over the labels it is given), and neither can the
best caption score alone (photographs score *higher* on the demo model's shape prompts
than shapes do). Two things do separate them, both measured against a reference made once
per model from images it does know:

- **neighbours**: the mean cosine of the image to its ``k`` nearest reference images;
- **caption margin**: how much better the image's best prompt of a bank fits it than the
  bank's median prompt. A shape has one caption that fits it far better than the rest; a
  photograph shown to the demo model fits all of them about equally (measured: median
  margin 0.45 for rendered shapes, 0.23 for photographs).

Each threshold is a low quantile (half of ``quantile``, default 1 % in all) of the same
score of the references themselves (neighbours leave each reference out): by construction
about 1 % of images like the references are flagged. For the embedded model the references
are scenes of its own world and the bank is its prompts (``clipcore.lab.reference``); for
any other CLIP, ``python -m clipcore.domain`` builds a reference from a folder of images its
deployment considers ordinary, with the null prompts and the scene taxonomy as the bank.

A reference is two files in a folder (the model's own, or one named by a setting):
``domain.json`` with a ``"reference"`` entry and ``reference.safetensors`` with the unit
embeddings of the images and of the prompt bank (fp16).
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
    embeddings: torch.Tensor  # (n, dim) unit rows: the reference images
    prompts: torch.Tensor  # (m, dim) unit rows: the prompt bank
    k: int
    threshold: float  # on the neighbours score
    margin_threshold: float  # on the caption margin
    made_from: str

    def scores(self, images: torch.Tensor) -> torch.Tensor:
        """Mean cosine of each unit image embedding to its ``k`` nearest references."""
        references = self.embeddings.to(images.device, images.dtype)
        similarity = images @ references.T
        return similarity.topk(min(self.k, len(references)), dim=1).values.mean(dim=1)

    def margins(self, images: torch.Tensor) -> torch.Tensor:
        """Best prompt's cosine minus the median prompt's, per image."""
        return caption_margins(images, self.prompts.to(images.device, images.dtype))

    def check(self, images: torch.Tensor) -> list[DomainCheck]:
        scores, margins = self.scores(images).float(), self.margins(images).float()
        return [
            DomainCheck(
                score=round(s, 4),
                threshold=round(self.threshold, 4),
                caption_margin=round(m, 4),
                caption_margin_threshold=round(self.margin_threshold, 4),
                in_domain=s >= self.threshold and m >= self.margin_threshold,
            )
            for s, m in zip(scores.tolist(), margins.tolist(), strict=True)
        ]


def caption_margins(images: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    similarity = images @ prompts.T
    return similarity.max(dim=1).values - similarity.median(dim=1).values


def build_reference(
    embeddings: torch.Tensor,
    prompts: torch.Tensor,
    made_from: str,
    k: int = DEFAULT_K,
    quantile: float = DEFAULT_QUANTILE,
) -> DomainReference:
    """A reference from unit image and prompt embeddings; thresholds from the references'
    own scores (neighbours leave-one-out), half of ``quantile`` each."""
    embeddings, prompts = embeddings.float(), prompts.float()
    similarity = embeddings @ embeddings.T
    similarity.fill_diagonal_(-2.0)  # an image is not its own neighbour
    own = similarity.topk(min(k, len(embeddings) - 1), dim=1).values.mean(dim=1)
    threshold = float(torch.quantile(own, quantile / 2))
    margin_threshold = float(torch.quantile(caption_margins(embeddings, prompts), quantile / 2))
    return DomainReference(
        embeddings.half(), prompts.half(), k, threshold, margin_threshold, made_from
    )


def save_reference(reference: DomainReference, folder: Path, quantile: float) -> None:
    """Write the reference into ``folder``, keeping whatever else ``domain.json`` holds."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"embeddings": reference.embeddings, "prompts": reference.prompts}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / REFERENCE_FILE))
    path = folder / DOMAIN_FILE
    described = json.loads(path.read_text()) if path.exists() else {}
    described["reference"] = {
        "k": reference.k,
        "quantile": quantile,
        "threshold": round(reference.threshold, 6),
        "margin_threshold": round(reference.margin_threshold, 6),
        "prompts": len(reference.prompts),
        "images": len(reference.embeddings),
        "made_from": reference.made_from,
    }
    path.write_text(json.dumps(described, indent=2, ensure_ascii=False) + "\n")


def load_reference(folder: str | Path) -> DomainReference | None:
    """The reference kept in ``folder``, or None when it holds none."""
    folder = Path(folder)
    path = folder / DOMAIN_FILE
    if not (path.is_file() and (folder / REFERENCE_FILE).is_file()):
        return None
    entry = json.loads(path.read_text()).get("reference")
    if not entry:
        return None
    tensors = load_file(str(folder / REFERENCE_FILE))
    return DomainReference(
        tensors["embeddings"],
        tensors["prompts"],
        int(entry["k"]),
        float(entry["threshold"]),
        float(entry["margin_threshold"]),
        str(entry["made_from"]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m clipcore.domain --clip MODEL --images DIR --out DIR``."""
    from PIL import Image
    from tqdm import tqdm

    from clipcore.clip_model import load_clip
    from clipcore.encode import embed_images, embed_texts
    from clipcore.search_decision import null_prompts
    from clipcore.taxonomy import load_default_taxonomy

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
    bank = [*null_prompts(), *(p for s in load_default_taxonomy().scenes for p in s.prompts)]
    prompts = embed_texts(clip, bank).cpu()
    reference = build_reference(torch.cat(parts), prompts, made_from, args.k, args.quantile)
    save_reference(reference, args.out, args.quantile)
    print(f"threshold {reference.threshold:.4f} from {made_from}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
