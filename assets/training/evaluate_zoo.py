"""Measure the bundled generative models in their domain's feature space and record it in their cards.

Why: the pruning toolkit compares pruned models against these dense baselines, so each card must
state the dense model's FID (in the digits-features / tones-features space, since InceptionV3 is
neither available offline nor meaningful at 16x16) next to a data-vs-data reference FID that shows
what "as good as real" looks like at the same sample size.

Run after all models are trained:  .venv/bin/python assets/training/evaluate_zoo.py --models assets/models
(`--only digits-sd3` measures one model)
Writes <model>/metrics.json and an "Evaluation" section in <model>/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for diffprune
from digit_prompts import WORDS  # noqa: E402
from digits_data import digits_split, to_unit  # noqa: E402

from diffprune.evaluation.metrics.feature_networks import FeatureClassifier  # noqa: E402

N = 200


def fid(judge, real, fake) -> float:
    """FID between two [N, C, H, W] float [0, 1] batches in the judge's feature space."""
    metric = FrechetInceptionDistance(feature=judge, normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def class_stats(judge, images) -> dict:
    """How the judge labels generated images: counts per class and mean top-class probability."""
    with torch.no_grad():
        probs = judge.classify(images).softmax(1)
    return {
        "class_counts": torch.bincount(probs.argmax(1), minlength=probs.shape[1]).tolist(),
        "mean_top_probability": round(probs.max(1).values.mean().item(), 4),
    }


def record(folder: Path, metrics: dict, text: str) -> None:
    """Write metrics.json and (re)place the card's Evaluation section."""
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    card = folder / "README.md"
    body = re.sub(r"\n## Evaluation\n.*?(?=\n## |\Z)", "", card.read_text(), flags=re.S).rstrip() + "\n"
    card.write_text(
        body + "\n## Evaluation\n\n" + text.strip() + "\n\nMeasured with `.venv/bin/python "
        "assets/training/evaluate_zoo.py --models assets/models` (1 CPU thread, fixed seeds).\n"
    )


def evaluate_text_to_image(pipe, folder: Path, guidance: float, judge, held, ref) -> None:
    """Prompt accuracy and FID of a bundled text-to-image pipeline, recorded in its card."""
    t0 = time.time()
    pipe.set_progress_bar_config(disable=True)
    prompts = [f"a handwritten {WORDS[i % 10]}" for i in range(N)]
    fake = pipe(
        prompts,
        num_inference_steps=20,
        guidance_scale=guidance,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    ).images
    with torch.no_grad():
        pred = judge.classify(fake).argmax(1)
    acc = (pred == torch.arange(N) % 10).float().mean().item()
    m = {
        "fid_digits_features": round(fid(judge, held, fake), 3),
        "fid_reference_train_vs_heldout": round(ref, 3),
        "prompt_accuracy": round(acc, 4),
        "samples": N,
        "inference_steps": 20,
        "guidance_scale": guidance,
        "seconds": round(time.time() - t0, 1),
    }
    record(
        folder,
        m,
        f"{N} samples, prompts 'a handwritten <word>' cycling over the ten digits, 20 steps, guidance {guidance:g}, "
        f"seed 0: prompt accuracy (digits-features) **{acc * 100:.1f}%**; FID in the digits-features space vs the "
        f"360 held-out digits **{m['fid_digits_features']:.2f}** (reference real-vs-real {ref:.2f}).",
    )
    print(folder.name, m, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="assets/models")
    ap.add_argument("--only", default="digits-ddpm,digits-t2i,digits-sd3,tones-audio", help="comma-separated")
    args = ap.parse_args()
    only = args.only.split(",")
    torch.set_num_threads(1)
    root = Path(args.models)
    _, _, x_te, _ = digits_split()
    x_tr, _, _, _ = digits_split()
    held = to_unit(x_te, 16)  # 360 held-out digits
    ref_train = to_unit(x_tr[:N], 16)
    digits_judge = FeatureClassifier.from_pretrained(root / "digits-features").eval()
    ref = fid(digits_judge, held, ref_train)

    from diffusers import DDPMPipeline, StableDiffusion3Pipeline, StableDiffusionPipeline

    if "digits-ddpm" in only:
        t0 = time.time()
        pipe = DDPMPipeline.from_pretrained(root / "digits-ddpm")
        pipe.set_progress_bar_config(disable=True)
        imgs = pipe(
            batch_size=N, num_inference_steps=100, generator=torch.Generator().manual_seed(0), output_type="np"
        ).images
        fake = torch.from_numpy(imgs).permute(0, 3, 1, 2)
        m = {
            "fid_digits_features": round(fid(digits_judge, held, fake), 3),
            "fid_reference_train_vs_heldout": round(ref, 3),
            "samples": N,
            "inference_steps": 100,
            **class_stats(digits_judge, fake),
            "seconds": round(time.time() - t0, 1),
        }
        record(
            root / "digits-ddpm",
            m,
            f"FID in the digits-features space, {N} samples (100 DDPM steps, seed 0) vs the 360 held-out digits: "
            f"**{m['fid_digits_features']:.2f}** (reference: {N} real training digits vs held-out = {ref:.2f}). "
            f"digits-features labels the samples {m['class_counts']} (counts for 0..9), mean top-class probability "
            f"{m['mean_top_probability']:.3f}.",
        )
        print("digits-ddpm", m, flush=True)

    if "digits-t2i" in only:
        pipe = StableDiffusionPipeline.from_pretrained(root / "digits-t2i")
        evaluate_text_to_image(pipe, root / "digits-t2i", 5.0, digits_judge, held, ref)
    if "digits-sd3" in only:
        pipe = StableDiffusion3Pipeline.from_pretrained(root / "digits-sd3", text_encoder_3=None, tokenizer_3=None)
        evaluate_text_to_image(pipe, root / "digits-sd3", 7.0, digits_judge, held, ref)  # SD3's default guidance

    if "tones-audio" not in only:
        return
    try:
        import librosa  # noqa: F401
    except ImportError:
        print("librosa missing: tones-audio not evaluated")
        return
    from diffusers import AudioDiffusionPipeline
    from tones_data import tones_dataset

    t0 = time.time()
    tones_judge = FeatureClassifier.from_pretrained(root / "tones-features").eval()
    real, _ = tones_dataset(per_class=N // 10, seed=2)
    real_ref, _ = tones_dataset(per_class=N // 10, seed=3)
    tref = fid(tones_judge, real, real_ref)
    pipe = AudioDiffusionPipeline.from_pretrained(root / "tones-audio")
    pipe.set_progress_bar_config(disable=True)
    out = pipe(batch_size=N, steps=50, generator=torch.Generator().manual_seed(0))
    fake = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0) for im in out.images]).unsqueeze(1)
    m = {
        "fid_tones_features": round(fid(tones_judge, real, fake), 3),
        "fid_reference_real_vs_real": round(tref, 3),
        "samples": N,
        "inference_steps": 50,
        **class_stats(tones_judge, fake),
        "seconds": round(time.time() - t0, 1),
    }
    record(
        root / "tones-audio",
        m,
        f"FID in the tones-features space, {N} generated mel images (DDIM 50 steps, seed 0) vs {N} freshly rendered "
        f"clips: **{m['fid_tones_features']:.2f}** (reference real-vs-real {tref:.2f}). tones-features labels the "
        f"samples {m['class_counts']} (counts for classes 0..9), mean top-class probability "
        f"{m['mean_top_probability']:.3f}.",
    )
    print("tones-audio", m, flush=True)


if __name__ == "__main__":
    main()
