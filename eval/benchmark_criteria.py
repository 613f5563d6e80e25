"""Every criterion side by side: FID (bundled feature network) against the original's samples, and CLIP
score (digits-clip) for text-to-image, at several MAC budgets, without fine-tuning, in one run.

    .venv/bin/python eval/benchmark_criteria.py [--models digits-ddpm,digits-t2i] [--budgets 0.9,0.8,0.7,0.6]
        [--distill-steps N]   (also distil every cut from the original and evaluate it: "<criterion> + distill")
    [--kinds attention,transformer_block,...]   (only units of these kinds are candidates)

Each (criterion, budget) cut is evaluated with `--repeats` different sample seeds; `random` also draws a new
selection per repeat, except where the candidates are few (at most 6, e.g. digits-sd3's joint blocks): there
every selection random scores can make is cut and evaluated at every seed, and the row is their exact expectation
(five draws of ten possible sets are too noisy an estimate of random's mean to compare against). Scores of
budget-blind criteria are computed once per model and reused across budgets. Writes a table and Pareto plots
(docs/pareto_<model>.png) into docs/results.md.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import RESULTS, hardware, write_section  # noqa: E402

from diffprune.cli.prune import kinds_filter  # noqa: E402
from diffprune.criteria import available_criteria, get_criterion  # noqa: E402
from diffprune.errors import DiffpruneError  # noqa: E402
from diffprune.evaluation.running import evaluate, load_models, run_evaluation  # noqa: E402
from diffprune.evaluation.settings import EvaluationSettings  # noqa: E402
from diffprune.models.adapters import CalibrationSettings  # noqa: E402
from diffprune.models.loading import load_pipeline  # noqa: E402
from diffprune.models.prompts import default_prompts  # noqa: E402
from diffprune.pruning.prune import prune  # noqa: E402
from diffprune.recovery.distillation import DistillSettings, distill  # noqa: E402
from diffprune.structure.costs import pipeline_cost_inputs  # noqa: E402
from diffprune.structure.denoiser import denoiser_of  # noqa: E402
from diffprune.structure.selection import Budget, select_units  # noqa: E402
from diffprune.structure.units import survey_denoiser  # noqa: E402

FEATURES = {
    "digits-ddpm": "digits-features",
    "digits-t2i": "digits-features",
    "digits-sd3": "digits-features",
    "tones-audio": "tones-features",
}
TEXT_MODELS = ("digits-t2i", "digits-sd3")  # scored with CLIP (digits-clip) as well
DISTILLED = " + distill"
EXACT_RANDOM_CANDIDATES = 6  # up to 6! = 720 equally likely orders of random's scores are enumerated


@dataclass
class FixedScores:
    """Scores given up front: one order of random's scores, so prune() cuts exactly what that order selects."""

    scores: dict

    def score(self, context, candidates, removed, round_index):
        return {unit.name: self.scores[unit.name] for unit in candidates}


def random_selections(pipeline, keep: float, kinds: str | None) -> list[tuple[float, dict]] | None:
    """Every set random's scores can select at `keep`, as (probability, one order of scores that selects it), where
    the candidates are few enough to enumerate every order of their scores (each order is equally likely); else
    None. Orders are grouped by the set select_units picks; prune()'s cut may add a unit when the measured cut
    misses the budget, which the representative order decides for its whole group."""
    survey = survey_denoiser(denoiser_of(pipeline), pipeline_cost_inputs(pipeline))
    wanted = kinds_filter(kinds)
    units = [unit for unit in survey.units if wanted is None or wanted(unit)]
    if len(units) > EXACT_RANDOM_CANDIDATES:
        return None
    budget, by_set = Budget(keep_macs=keep), {}
    orders = list(itertools.permutations(range(len(units))))
    for order in orders:
        scores = {unit.name: float(rank) for unit, rank in zip(units, order, strict=True)}
        chosen = frozenset(unit.name for unit in select_units(units, scores, budget, survey.macs))
        by_set.setdefault(chosen, [0, scores])[0] += 1
    return [(count / len(orders), scores) for count, scores in by_set.values()]


def quality(pipeline, original, model, args, seed):
    metrics = ("fid", "clip") if model in TEXT_MODELS else ("fid",)
    report = evaluate(
        pipeline,
        reference=original,
        metrics=metrics,
        num_samples=args.eval_samples,
        seed=seed,
        num_inference_steps=args.eval_steps,
        fid_features=FEATURES[model],
        clip_model="digits-clip" if model in TEXT_MODELS else None,
        show_progress=False,
    )
    results = report["results"]
    reference = report["reference_results"] or {}
    return results["fid"]["vs_reference"], results.get("clip_score"), reference.get("clip_score")


def work_name(criterion: str, keep: float, repeat: int, options) -> str:
    """Scores are reused across budgets unless the criterion aims at the budget (gradient flow) or the options
    differ (random's seed); the score store refuses mixed settings, so those get folders of their own."""
    name = f"{criterion}-{repeat}" if options else criterion
    base, spec_options = parse_criterion(criterion)
    aims_at_budget = get_criterion(base).uses_budget or spec_options.get("rounds", 1) > 1
    return f"{name}-keep{keep}" if aims_at_budget else name


def parse_criterion(spec: str) -> tuple[str, dict]:
    """ "ld-pruner" or "ld-pruner:statistic=paired" (options as key=value, comma-free) -> (name, options).
    `rounds=K` is prune()'s progressive re-scoring, not a criterion option: "ld-pruner:rounds=3"."""
    name, _, options = spec.partition(":")
    pairs = [option.split("=", 1) for option in options.split(";") if option]
    return name, {key: int(value) if value.isdigit() else value for key, value in pairs}


def run_model(model, args, work_root):
    """Cut every (criterion, budget) once (random: once per repeat), then evaluate all cuts of a repeat in one
    evaluation run against the original, so the original's samples are drawn once per seed, not once per cut."""
    original = load_pipeline(model)
    calibration = dict(
        num_samples=args.calibration_samples,
        num_inference_steps=args.inference_steps,
        prompts=default_prompts(original),
    )
    cuts = {}  # (spec, keep) -> {"results": [PruneResult per repeat, or one shared], "seconds": ...}
    for spec in args.criteria:
        criterion, criterion_options = parse_criterion(spec)
        for keep in args.budgets:
            results, started = [], time.perf_counter()
            exact = (
                random_selections(original, keep, args.kinds)
                if criterion == "random" and "rounds" not in criterion_options
                else None
            )
            if exact:
                for _, scores in exact:
                    results.append(
                        prune(
                            original,
                            FixedScores(scores),
                            Budget(keep_macs=keep),
                            calibration=CalibrationSettings(**calibration),
                            show_progress=False,
                            unit_filter=kinds_filter(args.kinds),
                        )
                    )
                cuts[(spec, keep)] = {
                    "results": results,
                    "weights": [weight for weight, _ in exact],
                    "seconds": time.perf_counter() - started,
                }
                print(f"{model} {spec:12s} keep {keep:.1f}: every selection, {len(results)} sets", flush=True)
                continue
            # deterministic criteria select once; random redraws its selection for every repeat
            for repeat in range(args.repeats if criterion == "random" else 1):
                options = {**criterion_options, **({"seed": repeat} if criterion == "random" else {})} or None
                criterion_arguments = {key: value for key, value in (options or {}).items() if key != "rounds"}
                try:
                    results.append(
                        prune(
                            original,
                            get_criterion(criterion, **criterion_arguments),
                            Budget(keep_macs=keep),
                            rounds=(options or {}).get("rounds", 1),
                            calibration=CalibrationSettings(**calibration),
                            work_dir=work_root / model / work_name(spec, keep, repeat, options),
                            show_progress=False,
                            unit_filter=kinds_filter(args.kinds),
                        )
                    )
                except DiffpruneError as error:
                    print(f"{model} {spec} {keep}: {error}")
                    break
            if results:
                cuts[(spec, keep)] = {"results": results, "seconds": time.perf_counter() - started}
                print(f"{model} {spec:12s} keep {keep:.1f}: cut in {cuts[(spec, keep)]['seconds']:.0f} s", flush=True)

    if args.distill_steps:
        distill_cuts(original, cuts, calibration, args)
    scores = {key: {"fid": [], "clip": []} for key in cuts}
    original_clip = []
    for repeat in range(args.repeats):
        labels, models = {}, {"original": original}  # label -> (cut key, weight in that cut's row)
        for key, cut in cuts.items():
            results = cut["results"]
            # a row is one cut, random's draw for this seed, or the weighted mean over all of random's selections
            members = (
                list(zip(results, cut["weights"], strict=True))
                if "weights" in cut
                else [(results[repeat % len(results)], 1.0)]
            )
            for index, (result, weight) in enumerate(members):
                label = f"{key[0]} @ {key[1]}" + (f" #{index}" if len(members) > 1 else "")
                models[label] = result if DISTILLED in key[0] else result.pipeline
                labels[label] = (key, weight)
        run = run_evaluation(
            load_models(models),
            "original",
            EvaluationSettings(
                metrics=("fid", "clip") if model in TEXT_MODELS else ("fid",),
                num_samples=args.eval_samples,
                seed=1000 * repeat,
                num_inference_steps=args.eval_steps,
                fid_features=FEATURES[model],
                clip_model="digits-clip" if model in TEXT_MODELS else None,
                show_progress=False,
            ),
        )
        this_seed = {key: collections.Counter() for key in cuts}
        for label, (key, weight) in labels.items():
            this_seed[key]["fid"] += weight * run.rows[label]["fid"]["vs_reference"]
            if run.rows[label].get("clip_score") is not None:
                this_seed[key]["clip"] += weight * run.rows[label]["clip_score"]
        for key, values in this_seed.items():
            for metric, value in values.items():
                scores[key][metric].append(value)
        if run.rows["original"].get("clip_score") is not None:
            original_clip.append(run.rows["original"]["clip_score"])
        print(f"{model}: evaluated repeat {repeat + 1}/{args.repeats}", flush=True)

    rows = []
    for (spec, keep), cut in cuts.items():
        first = cut["results"][0] if DISTILLED not in spec else cut["cut"]
        rows.append(
            {
                "criterion": spec,
                "keep": keep,
                "kept": first.report["kept_fraction"]["macs"],
                "fid": scores[(spec, keep)]["fid"],
                "clip": scores[(spec, keep)]["clip"],
                "prune_seconds": cut["seconds"] / len(cut["results"]),
                "removed": len(first.removed),
                "selections": len(cut["results"]) if "weights" in cut else None,
                "removed_units": first.removed,
                "removed_kinds": [u["kind"] for u in first.report["units"] if u["removed"]],
            }
        )
        print(
            f"{model} {spec:12s} keep {keep:.1f}: kept {rows[-1]['kept']:.3f} FID {statistics.mean(rows[-1]['fid']):.2f}"
            + (f" CLIP {statistics.mean(rows[-1]['clip']):.2f}" if rows[-1]["clip"] else ""),
            flush=True,
        )
    return rows, (statistics.mean(original_clip) if original_clip else None)


def distill_cuts(original, cuts, calibration, args) -> None:
    """Add a distilled copy of every cut (`spec + distill`): the original teaches it for args.distill_steps steps
    on its own generations (data-free, task + output + feature losses 1/1/1). `random` distils its first draw, or,
    where its row is the expectation over every set it can remove, every one of those sets."""
    for (spec, keep), cut in list(cuts.items()):
        started = time.perf_counter()
        members = cut["results"] if "weights" in cut else cut["results"][:1]
        distilled = [
            distill(
                member.pipeline,
                original,
                DistillSettings(steps=args.distill_steps, batch_size=args.distill_batch, learning_rate=args.distill_lr),
                CalibrationSettings(**{**calibration, "num_samples": args.distill_samples}),
                show_progress=False,
            )[0]
            for member in members
        ]
        seconds = time.perf_counter() - started
        # the row divides by the number of cuts: each cut's own scoring + cut time plus its distillation
        cut_seconds = cut["seconds"] / len(cut["results"]) * len(members)
        entry = {"results": distilled, "cut": members[0], "seconds": cut_seconds + seconds}
        if "weights" in cut:
            entry["weights"] = cut["weights"]
        cuts[(spec + DISTILLED, keep)] = entry
        print(f"{spec:12s} keep {keep:.1f}: distilled {len(members)} cut(s) in {seconds:.0f} s", flush=True)


def mean_std(values) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def pareto_plot(model, rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if any(row["clip"] for row in rows) else 1
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.2), squeeze=False)
    for criterion in dict.fromkeys(row["criterion"] for row in rows):
        mine = sorted((r for r in rows if r["criterion"] == criterion), key=lambda r: r["kept"])
        kept = [r["kept"] for r in mine]
        style = "s--" if DISTILLED in criterion else "o-"
        axes[0][0].plot(kept, [statistics.mean(r["fid"]) for r in mine], style, label=criterion)
        if panels == 2:
            axes[0][1].plot(kept, [statistics.mean(r["clip"]) for r in mine], style, label=criterion)
    axes[0][0].set(
        xlabel="fraction of the denoiser's MACs kept (measured)",
        ylabel="FID vs original (lower is better)",
        title=model,
    )
    if panels == 2:
        axes[0][1].set(
            xlabel="fraction of the denoiser's MACs kept (measured)",
            ylabel="CLIP score (higher is better)",
            title=model,
        )
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits-ddpm,digits-t2i")
    parser.add_argument("--budgets", default="0.9,0.8,0.7,0.6")
    parser.add_argument(
        "--criteria",
        default=",".join(available_criteria()),
        help="comma-separated; options after a colon, e.g. ld-pruner:statistic=paired",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calibration-samples", type=int, default=16)
    parser.add_argument("--inference-steps", type=int, default=10)
    parser.add_argument("--eval-samples", type=int, default=64)
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--distill-steps", type=int, default=0, help="also distil every cut this many steps")
    parser.add_argument("--distill-batch", type=int, default=8)
    parser.add_argument("--distill-lr", type=float, default=3e-4)
    parser.add_argument("--distill-samples", type=int, default=64, help="teacher generations used as data")
    parser.add_argument("--kinds", default=None, help="comma-separated unit kinds that may be removed (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (run models in parallel with 1)")
    parser.add_argument("--section", default="", help="suffix of the results section (to keep a focused run apart)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/results.md alone")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.budgets = [float(b) for b in args.budgets.split(",")]
    args.criteria = args.criteria.split(",")
    command = " ".join(["python"] + sys.argv)
    with tempfile.TemporaryDirectory() as work:
        for model in args.models.split(","):
            started = time.perf_counter()
            rows, original_clip = run_model(model, args, Path(work))
            plot_name = f"pareto_{model}" + (f"-{args.section}" if args.section else "") + ".png"
            plot = RESULTS.parent / plot_name
            if not args.no_write and len(args.budgets) > 1:
                pareto_plot(model, rows, plot)
            has_clip = any(row["clip"] for row in rows)
            lines = ["", ""]
            if original_clip is not None:
                lines.append(f"Original's CLIP score on the same prompts and seeds: {original_clip:.2f}.\n")
            lines.append(
                "| criterion | keep_macs | MACs kept (measured) | units removed | FID vs original | "
                + ("CLIP score | " if has_clip else "")
                + "scoring + cut (+ distillation) time |"
            )
            lines.append("|---|---:|---:|---:|---:|" + ("---:|" if has_clip else "") + "---:|")
            for row in sorted(rows, key=lambda r: (-r["keep"], statistics.mean(r["fid"]))):
                name = row["criterion"] + (f" (all {row['selections']} sets)" if row["selections"] else "")
                lines.append(
                    f"| {name} | {row['keep']:.1f} | {row['kept']:.3f} | {row['removed']} | "
                    f"{mean_std(row['fid'])} | "
                    + (f"{mean_std(row['clip'])} | " if has_clip else "")
                    + f"{row['prune_seconds']:.0f} s |"
                )
            lines += ["", "What each LD-Pruner statistic removes (unit kinds):", ""]
            for row in rows:
                if row["criterion"].startswith("ld-pruner"):
                    kinds = collections.Counter(kind.replace("_", " ") for kind in row["removed_kinds"])
                    lines.append(
                        f"- {row['criterion']} at {row['keep']:.1f}: "
                        + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
                    )
            if len(args.budgets) > 1:
                lines += ["", f"![Pareto plot for {model}]({plot_name})", ""]
            training = "before and after distillation" if args.distill_steps else "no fine-tuning"
            title = f"Criteria side by side on {model} ({training})" + (f", {args.section}" if args.section else "")
            text = (
                f"## {title}\n\nCommand: `{command}` · hardware: "
                f"{hardware()} · {time.perf_counter() - started:.0f} s\n\nFID in the bundled feature network's space "
                f"against the original's samples ({args.eval_samples} samples, {args.eval_steps} steps, mean ± std "
                f"over {args.repeats} sample seeds; `random` also redraws its selection each time, or, where a row "
                f"says 'all N sets', is the exact expectation over every set random selection can remove, each "
                f"weighted by its probability and evaluated at every seed). Calibration: "
                f"{args.calibration_samples} samples x {args.inference_steps} steps of the pipeline's own sampler.\n\n"
                + "\n".join(lines[2:])
            )
            print(text)
            if not args.no_write:
                write_section(f"criteria-{model}" + (f"-{args.section}" if args.section else ""), text)


if __name__ == "__main__":
    main()
