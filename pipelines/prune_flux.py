"""Depth-prune a FLUX.1 pipeline (diffusers FluxPipeline) from one command.

    python pipelines/prune_flux.py --model black-forest-labs/FLUX.1-dev --keep-macs 0.8 --out flux-pruned

Scores the transformer's blocks (19 double-stream and 38 single-stream in FLUX.1) with LD-Pruner on calibration
images the pipeline generates itself (flow-matching Euler, its own guidance embedding), removes the least
important blocks until 80% of the transformer's MACs remain, and evaluates original vs pruned on the same
prompts and fresh seeds. The cut is a stock FluxTransformer2DModel with fewer blocks: the saved folder loads
with plain diffusers. --distill-steps N distils the cut from the original (output and feature losses on the
original's own generations, flow-matching noise as FLUX was trained) before the comparison.

Writes into --out, a new folder (a second run into it is an error; an interrupted run resumes when rerun):
    pruned/                  the pruned pipeline, pruning_report.json and README.md (model card)
    distilled/               with --distill-steps N: the cut after N distillation steps, with its report
    comparison/report.html   the comparison page: samples side by side, FID, CLIP score, latency, MACs

Needs: a CUDA GPU with about 40 GB for FLUX.1 in bf16 (the default there); the model's weights (a hub id is
downloaded, or pass a local folder); for the CLIP score the weights of --clip-model, for FID the InceptionV3
weights. Offline without them, pass --metrics macs,latency.
"""

from __future__ import annotations

import sys

import recipe

DEFAULTS = recipe.RecipeDefaults(
    description=__doc__,
    model="black-forest-labs/FLUX.1-dev",
    pipeline_class="FluxPipeline",
    other_pipelines="for PixArt use pipelines/prune_pixart.py, for other pipelines `diffprune prune`",
    keep_macs=0.8,
    dtype_on_cuda="bf16",
    num_samples=16,
    inference_steps=20,
    variants_per_batch=2,
    max_batch=4,  # 1024x1024: 4096 image tokens per sample
    distill_batch_size=1,
    eval_samples=32,
    eval_batch_size=1,
    depth_only=True,  # whole blocks, so the cut is a stock FluxTransformer2DModel
)


def main(argv: list[str] | None = None) -> int:
    return recipe.main(DEFAULTS, argv, prog="prune_flux.py")


if __name__ == "__main__":
    sys.exit(main())
