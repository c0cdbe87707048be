"""A byte-level BPE tokenizer for the generated world's captions, saved as a CLIP tokenizer.

The BPE is trained by the ``tokenizers`` library on captions from ``clipcore.lab.world`` with
CLIP's own normalisation and pre-tokenisation (lower-casing, CLIP's split pattern, byte-level,
``</w>`` word ends). Its vocabulary also holds every byte, with and without ``</w>``, so any
text a user sends can be tokenised without unknown tokens (an unknown token would map to
``<|endoftext|>`` and move the pooled position). The result is a ``transformers``
``CLIPTokenizer`` whose ``save_pretrained`` folder loads offline with
``CLIPTokenizer(Fast).from_pretrained(folder)`` and ``CLIPProcessor.from_pretrained(folder)``.
"""

from __future__ import annotations

import numpy as np
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

from clipcore.lab import world

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
CLIP_SPLIT = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
    r"""[^\s\p{L}\p{N}]+"""
)


def caption_corpus(seed: int = 0, scenes: int = 3000) -> list[str]:
    """Captions of generated scenes, plus the zero-shot prompts and a few prompt variants."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    for _ in range(scenes):
        scene = world.render_scene(rng, size=32)
        texts.extend(scene.captions)
    texts.extend(world.zero_shot_prompts())
    for c in world.COLOURS:
        for s in world.SHAPES:
            texts += [
                f"a {c} {s}.",
                f"a photo of a {s}.",
                f"a photo of a {c} shape.",
                f"a picture of a {c} {s}",
                f"an image of a {c} {s}",
            ]
    return texts


def train_tokenizer(texts: list[str], merges_budget: int = 400, max_length: int = 64):
    """Train the BPE and return a ``transformers.CLIPTokenizer``."""
    from transformers import CLIPTokenizer

    byte_alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    bpe = Tokenizer(
        models.BPE(unk_token=EOS, end_of_word_suffix="</w>", continuing_subword_prefix="")
    )
    bpe.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=len(byte_alphabet) * 2 + 2 + merges_budget,
        min_frequency=2,
        special_tokens=[BOS, EOS],
        initial_alphabet=byte_alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    trained = bpe.get_vocab()

    vocab: dict[str, int] = {BOS: 0, EOS: 1}
    for ch in byte_alphabet:
        vocab.setdefault(ch, len(vocab))
    for ch in byte_alphabet:
        vocab.setdefault(ch + "</w>", len(vocab))
    for tok, _ in sorted(trained.items(), key=lambda kv: kv[1]):
        vocab.setdefault(tok, len(vocab))
    # merges as a list of (left, right) tuples, in the trained order
    import json

    model_json = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
    return tok
