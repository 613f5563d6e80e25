"""Train the bundled `digits-clip`: a tiny CLIPModel pairing digit images with digit prompts.

Why: the text-to-image model and the CLIP-score metric need a text encoder that understands
"a handwritten seven" offline; this CLIP supplies both (its text tower becomes digits-t2i's
text_encoder) and is itself a zero-shot digit classifier for prompt-faithfulness checks.

Reproduce:  .venv/bin/python assets/training/train_digits_clip.py --out assets/models/digits-clip
"""

from __future__ import annotations

import argparse
import random
import time

import torch
import torch.nn.functional as F
from card import count_params, folder_size_mb, write_card
from clip_tokenizer import check_tokenizer, write_tokenizer_files
from digit_prompts import TEMPLATES, prompt_for, random_prompt
from digits_data import digits_split, to_unit
from grids import save_grid
from training import schedule_factor
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

IMAGE_SIZE = 16
MAX_TOKENS = 16


def as_tensor(out):
    """transformers 5 returns model outputs from get_*_features; older versions return tensors."""
    if isinstance(out, torch.Tensor):
        return out
    for name in ("text_embeds", "image_embeds", "pooler_output"):
        val = getattr(out, name, None)
        if isinstance(val, torch.Tensor):
            return val
    return out[0]


def pixel_values(x01: torch.Tensor) -> torch.Tensor:
    """[N,1,16,16] in [0,1] -> CLIP pixel_values exactly as the saved CLIPImageProcessor makes them
    (RGB, mean 0.5, std 0.5)."""
    return (x01.repeat(1, 3, 1, 1) - 0.5) / 0.5


def build_config(vocab_size: int, bos: int, eos: int) -> CLIPConfig:
    """Hidden 64, 3 text / 3 vision layers, patch 4 on 16x16: tiny but enough for ten classes."""
    text = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    vision = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=4,
        num_channels=3,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=64)


@torch.no_grad()
def zero_shot(model, tok, images, labels, templates) -> float:
    """Accuracy of picking the digit whose (template-averaged) prompt embedding is most similar."""
    model.eval()
    img = F.normalize(as_tensor(model.get_image_features(pixel_values=pixel_values(images))), dim=-1)
    class_emb = []
    for d in range(10):
        prompts = [prompt_for(d, t, w) for t in templates for w in (True, False)]
        enc = tok(prompts, padding="max_length", max_length=MAX_TOKENS, return_tensors="pt")
        e = F.normalize(as_tensor(model.get_text_features(**enc)), dim=-1).mean(0)
        class_emb.append(F.normalize(e, dim=0))
    pred = (img @ torch.stack(class_emb).T).argmax(1)
    return (pred == labels).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="assets/models/digits-clip")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--per-digit", type=int, default=8, help="images per digit in each batch")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    tok = write_tokenizer_files(args.out, MAX_TOKENS)
    bos, eos = tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    model = CLIPModel(build_config(len(tok), bos, eos))

    x_tr, y_tr, x_te, y_te = digits_split()
    x_tr, x_te = to_unit(x_tr, IMAGE_SIZE), to_unit(x_te, IMAGE_SIZE)
    y_tr, y_te = torch.from_numpy(y_tr), torch.from_numpy(y_te)
    by_digit = [torch.nonzero(y_tr == d).flatten() for d in range(10)]

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        idx = torch.cat([ix[torch.randint(0, len(ix), (args.per_digit,), generator=gen)] for ix in by_digit])
        labels = y_tr[idx]
        # Small random shifts so the image tower does not key on exact pixel positions.
        imgs = torch.roll(x_tr[idx], shifts=(rng.randint(-1, 1), rng.randint(-1, 1)), dims=(2, 3))
        prompts = [random_prompt(int(d), rng) for d in labels]
        enc = tok(prompts, padding="max_length", max_length=MAX_TOKENS, return_tensors="pt")
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=pixel_values(imgs))
        # Batches hold several images of each digit, so every same-digit pair is a positive:
        # targets spread evenly over them instead of CLIP's one-hot diagonal.
        same = (labels[:, None] == labels[None, :]).float()
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (
            torch.sum(-target * F.log_softmax(out.logits_per_image, 1), 1).mean()
            + torch.sum(-target * F.log_softmax(out.logits_per_text, 1), 1).mean()
        )
        for g in opt.param_groups:
            g["lr"] = args.lr * schedule_factor(step, args.steps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    train_s = time.time() - t0
    model.eval()

    acc_one = zero_shot(model, tok, x_te, y_te, ["a handwritten {d}"])
    acc_all = zero_shot(model, tok, x_te, y_te, TEMPLATES)
    print(f"zero-shot held-out accuracy: one template {acc_one:.4f}, template ensemble {acc_all:.4f}")

    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        ),
        tokenizer=tok,
    )
    model.save_pretrained(args.out, safe_serialization=True)
    processor.save_pretrained(args.out)
    write_tokenizer_files(args.out, MAX_TOKENS)  # keep vocab.json/merges.txt too, for slow tokenizers
    # Round trip: the saved processor must give the same word tokens.
    check_tokenizer(CLIPProcessor.from_pretrained(args.out).tokenizer)
    save_grid(x_te[:64], f"{args.out}/samples.png", nrow=8, scale=6)

    write_card(
        args.out,
        "digits-clip",
        {
            "What": "A tiny `CLIPModel` + `CLIPProcessor` (CLIPImageProcessor + CLIPTokenizer) trained contrastively on "
            "scikit-learn digits paired with varied prompts. Its text tower is digits-t2i's text encoder; the full model "
            "scores prompt faithfulness (CLIP score) and classifies digits zero-shot.",
            "Data": "`load_digits` train split (assets/training/digits_data.py, stratified 80/20, random_state 0), images "
            f"upsampled to {IMAGE_SIZE}x{IMAGE_SIZE}, grayscale replicated to RGB. Prompts: "
            f"{len(TEMPLATES)} templates x (digit word | figure) from assets/training/digit_prompts.py.",
            "Tokenizer": f"BPE trained on the prompts in CLIP's format ('</w>' suffix, <|startoftext|>/<|endoftext|>), "
            f"{len(tok)} tokens, every prompt word is one token; model_max_length {MAX_TOKENS}, pad = <|endoftext|>. "
            "Built by assets/training/clip_tokenizer.py.",
            "Architecture": f"Text: 3 layers, hidden 64, 4 heads, MLP 128, {MAX_TOKENS} positions. Vision: 3 layers, "
            f"hidden 64, 4 heads, image {IMAGE_SIZE}, patch 4. Projection 64. Parameters: {count_params(model):,}.",
            "Training": f"{args.steps} steps, batch {10 * args.per_digit} ({args.per_digit} per digit), AdamW lr {args.lr} "
            f"(warm-up + cosine), multi-positive contrastive loss (all same-digit pairs are positives), +-1 px shifts, "
            f"seed {args.seed}. Wall time {train_s:.0f} s on 1 CPU thread.",
            "Metrics": f"Zero-shot classification of the {len(x_te)} held-out digits: **{acc_one * 100:.2f}%** with the "
            f"single prompt 'a handwritten {{digit word}}' (and 'a handwritten {{figure}}'), **{acc_all * 100:.2f}%** "
            "with all templates averaged.",
            "Samples": "`samples.png`: the first 64 held-out digits (what the image tower sees).",
            "Reproduce": "```\n.venv/bin/python assets/training/train_digits_clip.py --out assets/models/digits-clip\n```",
            "Size": f"{folder_size_mb(args.out):.2f} MB (safetensors).",
        },
    )
    print(f"done: {train_s:.0f}s, size {folder_size_mb(args.out):.2f} MB")


if __name__ == "__main__":
    main()
