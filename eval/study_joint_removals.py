"""Does LD-Pruner's latent distance find the best set of blocks to remove together? Every K-of-N removal, scored
and evaluated.

For a bundled model, every set of K removable units of one kind (digits-sd3's joint blocks by default) is removed
together (gates at 0) and scored with both LD-Pruner statistics on the calibration set; every set's cut is then
evaluated against the original (FID in the bundled feature network's space, CLIP score). What the one-shot,
progressive (rounds = K) and joint ("score the chosen set as a whole, swap a member") selections would pick is
read off the same scores: one-shot takes the K units with the lowest single scores, progressive adds the unit
whose addition scores lowest, joint takes the set with the lowest joint score (what any swap search converges
to at best). The mean over all sets is random selection's expectation (every set has the same MACs).

    python eval/study_joint_removals.py --model digits-sd3 --kind transformer_block --remove 3 --threads 1
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import hardware, write_section  # noqa: E402

from diffprune.criteria.ld_pruner import latent_statistics_distance, paired_latent_distance  # noqa: E402
from diffprune.evaluation.running import load_models, run_evaluation  # noqa: E402
from diffprune.evaluation.settings import EvaluationSettings  # noqa: E402
from diffprune.models.adapters import CalibrationSettings, adapter_for  # noqa: E402
from diffprune.models.components import with_denoiser  # noqa: E402
from diffprune.models.loading import load_pipeline  # noqa: E402
from diffprune.models.prompts import default_prompts  # noqa: E402
from diffprune.structure.costs import pipeline_cost_inputs  # noqa: E402
from diffprune.structure.denoiser import denoiser_of  # noqa: E402
from diffprune.structure.gates import gated, variant_values  # noqa: E402
from diffprune.structure.surgery import remove_units  # noqa: E402
from diffprune.structure.units import find_units  # noqa: E402


def short(names) -> str:
    return ",".join(sorted(name.rsplit(".", 1)[-1] for name in names))


def joint_scores(pipeline, units, candidates, largest, calibration):
    """{frozenset of unit names: (distribution distance, paired distance)} for every set of 1..largest units."""
    adapter = adapter_for(pipeline, calibration)
    reference = adapter.final_latents(1, "original")[:, 0]
    sets = [frozenset(c) for k in range(1, largest + 1) for c in itertools.combinations(candidates, k)]
    scores, per_batch = {}, 8
    for start in range(0, len(sets), per_batch):
        group = sets[start : start + per_batch]
        with gated(denoiser_of(pipeline), units, variant_values(units, [set(s) for s in group])):
            latents = adapter.final_latents(len(group))
        for index, removed in enumerate(group):
            modified = latents[:, index]
            scores[removed] = (
                latent_statistics_distance(reference, modified),
                paired_latent_distance(reference, modified),
            )
    return scores


def selections(scores, candidates, k, statistic: int) -> dict[str, frozenset]:
    """The set each selection rule picks from the same scores."""
    single = sorted(candidates, key=lambda name: scores[frozenset([name])][statistic])
    progressive = frozenset()
    for _ in range(k):
        best = min(
            (name for name in candidates if name not in progressive),
            key=lambda name: scores[progressive | {name}][statistic],
        )
        progressive = progressive | {best}
    sets = [s for s in scores if len(s) == k]
    return {
        "one-shot": frozenset(single[:k]),
        f"progressive (rounds={k})": progressive,
        "joint (best set score)": min(sets, key=lambda s: scores[s][statistic]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits-sd3")
    parser.add_argument("--kind", default="transformer_block")
    parser.add_argument("--remove", type=int, default=3, help="units removed together (K)")
    parser.add_argument("--calibration-samples", type=int, default=16)
    parser.add_argument("--inference-steps", type=int, default=8)
    parser.add_argument("--eval-samples", type=int, default=32)
    parser.add_argument("--eval-steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="evaluation seeds")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-results-md", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pipeline = load_pipeline(args.model)
    units = find_units(denoiser_of(pipeline), pipeline_cost_inputs(pipeline))
    candidates = [unit.name for unit in units if unit.kind == args.kind]
    calibration = CalibrationSettings(
        num_samples=args.calibration_samples,
        num_inference_steps=args.inference_steps,
        prompts=default_prompts(pipeline),
        show_progress=False,
    )
    scores = joint_scores(pipeline, units, candidates, args.remove, calibration)
    sets = sorted((s for s in scores if len(s) == args.remove), key=lambda s: scores[s][0])
    models = {"original": pipeline}
    for removed in sets:
        models[short(removed)] = with_denoiser(pipeline, remove_units(denoiser_of(pipeline), sorted(removed)))
    fid = {label: [] for label in models if label != "original"}
    clip = {label: [] for label in models}
    for repeat in range(args.repeats):
        run = run_evaluation(
            load_models(models),
            "original",
            EvaluationSettings(
                metrics=("fid", "clip"),
                num_samples=args.eval_samples,
                seed=1000 * repeat,
                num_inference_steps=args.eval_steps,
                fid_features="digits-features",
                clip_model="digits-clip",
                show_progress=False,
            ),
        )
        for label in models:
            if label != "original":
                fid[label].append(run.rows[label]["fid"]["vs_reference"])
            clip[label].append(run.rows[label]["clip_score"])
        print(f"evaluated seed {repeat + 1}/{args.repeats}", flush=True)

    def cell(values):
        return (
            f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"
        )

    lines = [
        "| set removed | distribution distance | paired distance | FID vs original | CLIP score |",
        "|---|---:|---:|---:|---:|",
    ]
    for removed in sets:
        label = short(removed)
        lines.append(
            f"| {label} | {scores[removed][0]:.2f} | {scores[removed][1]:.2f} | {cell(fid[label])} | {cell(clip[label])} |"
        )
    mean_fid = statistics.mean(statistics.mean(values) for values in fid.values())
    mean_clip = statistics.mean(statistics.mean(clip[label]) for label in fid)
    lines.append(f"| mean over all sets (random's expectation) | | | {mean_fid:.2f} | {mean_clip:.2f} |")
    lines += ["", "| selection rule | statistic | set | FID | CLIP |", "|---|---|---|---:|---:|"]
    for statistic, statistic_name in ((0, "distribution"), (1, "paired")):
        for rule, removed in selections(scores, candidates, args.remove, statistic).items():
            label = short(removed)
            lines.append(f"| {rule} | {statistic_name} | {label} | {cell(fid[label])} | {cell(clip[label])} |")
    text = (
        f"## Joint removals: every {args.remove} of {len(candidates)} {args.kind.replace('_', ' ')}s of {args.model}"
        f"\n\nCommand: `python {' '.join(sys.argv)}` · hardware: {hardware()} · {time.perf_counter() - started:.0f} s"
        f" · calibration {args.calibration_samples} samples x {args.inference_steps} steps; FID (bundled feature "
        f"network) and CLIP against the original's samples, {args.eval_samples} samples, {args.eval_steps} steps, "
        f"mean ± std over {args.repeats} seeds. Original's CLIP score: {statistics.mean(clip['original']):.2f}.\n\n"
        + "\n".join(lines)
    )
    print(text)
    if not args.no_results_md:
        write_section(f"joint-removals-{args.model}", text)


if __name__ == "__main__":
    main()
