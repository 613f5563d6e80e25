"""Depth-prune a PixArt-Sigma pipeline (diffusers PixArtSigmaPipeline) from one command.

    python pipelines/prune_pixart.py --model PixArt-alpha/PixArt-Sigma-XL-2-1024-MS --keep-macs 0.8 --out pixart-pruned

Scores the transformer's 28 blocks with LD-Pruner on calibration images the pipeline generates itself (its
DPM-Solver, guidance and resolution binning), removes the least important blocks until 80% of the
transformer's MACs remain, and evaluates original vs pruned on the same prompts and fresh seeds. The cut is a
stock PixArtTransformer2DModel with fewer blocks: the saved folder loads with plain diffusers. --distill-steps N
distils the cut from the original before the comparison.

Writes into --out, a new folder (a second run into it is an error; an interrupted run resumes when rerun):
    pruned/                  the pruned pipeline, pruning_report.json and README.md (model card)
    distilled/               with --distill-steps N: the cut after N distillation steps, with its report
    comparison/report.html   the comparison page: samples side by side, FID, CLIP score, latency, MACs

Needs: a CUDA GPU (fp16 by default there); the model's weights (a hub id is downloaded, or pass a local folder);
for the CLIP score the weights of --clip-model, for FID the InceptionV3 weights. Offline without them, pass
--metrics macs,latency.
"""

from __future__ import annotations

import sys

import recipe

DEFAULTS = recipe.RecipeDefaults(
    description=__doc__,
    model="PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
    pipeline_class="PixArtSigmaPipeline",
    other_pipelines="for FLUX use pipelines/prune_flux.py, for other pipelines `diffprune prune`",
    keep_macs=0.8,
    dtype_on_cuda="fp16",
    num_samples=16,
    inference_steps=20,
    variants_per_batch=4,
    max_batch=8,
    distill_batch_size=2,
    eval_samples=32,
    eval_batch_size=2,
    depth_only=True,  # whole blocks, so the cut is a stock PixArtTransformer2DModel
)


def main(argv: list[str] | None = None) -> int:
    return recipe.main(DEFAULTS, argv, prog="prune_pixart.py")


if __name__ == "__main__":
    sys.exit(main())
