"""Build a CLIP-format BPE tokenizer from the project's own prompt vocabulary.

Why: the standard CLIP vocabulary cannot be downloaded offline and is 49k tokens (most of a tiny
model's parameters). We train a BPE on the digit prompts with CLIP's conventions ("</w>" end-of-word
suffix, <|startoftext|>/<|endoftext|> specials at the end of the vocabulary) and write vocab.json +
merges.txt, so the stock `CLIPTokenizer.from_pretrained(folder)` loads it.

Trap (transformers 5): `CLIPTokenizer(vocab_file=..., merges_file=...)` silently builds a tokenizer
that knows only the two specials; `from_pretrained(folder)` or `CLIPTokenizer(vocab=dict, merges=list)`
are the ways that work, and `check_tokenizer` verifies real word tokens come out.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from digit_prompts import FIGURES, TEMPLATES, WORDS, all_prompts
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def train_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """BPE vocab and merges that encode every prompt word as one token (corpus is tiny, vocab ample)."""
    corpus = [p for d in range(10) for p in all_prompts(d)]
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=2000, end_of_word_suffix="</w>", min_frequency=1, show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(sorted(model["vocab"].items(), key=lambda kv: kv[1]))
    # Every letter/figure, alone and word-final, so unseen words still tokenize (as characters).
    for ch in string.ascii_lowercase + string.digits:
        for t in (ch, ch + "</w>"):
            vocab.setdefault(t, len(vocab))
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return vocab, merges


def write_tokenizer_files(folder, max_length: int):
    """Write vocab.json/merges.txt and load them back with the stock CLIPTokenizer (checked)."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = train_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=0))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    tok = CLIPTokenizer.from_pretrained(str(folder), model_max_length=max_length, pad_token=EOS)
    check_tokenizer(tok)
    return tok


def check_tokenizer(tok) -> None:
    """Fail loudly if the tokenizer does not split prompts into the trained word tokens."""
    ids = tok("a handwritten seven")["input_ids"]
    toks = tok.convert_ids_to_tokens(ids)
    want = [BOS, "a</w>", "handwritten</w>", "seven</w>", EOS]
    if toks != want:
        raise RuntimeError(f"tokenizer is broken: {toks} != {want}")
    for t in TEMPLATES:
        for d in WORDS + FIGURES:
            p = t.format(d=d)
            n = len(tok(p)["input_ids"])
            if n != len(p.split()) + 2 or n > tok.model_max_length:
                raise RuntimeError(f"prompt {p!r} does not tokenize to whole words within {tok.model_max_length}")
