"""`diffprune demo`: prune every bundled model with LD-Pruner to 70% of its denoiser's MACs (UNet or
transformer), evaluate each against its original (FID, CLIP score for text-to-image, latency, MACs), write
comparison grids and one HTML page.

Sized to finish in a few minutes on 2 CPU cores: small calibration sets and sample counts (say so, and
use the eval/ benchmarks for numbers worth quoting).
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from diffprune.cli.device_options import add_device_options, device_and_dtype_from_args
from diffprune.cli.prune import print_summary
from diffprune.errors import DiffpruneError
from diffprune.outputs import check_new_output
from diffprune.structure.selection import DEFAULT_BUDGET, Budget, check_reachable

DEMO_MODELS = {
    # name: (calibration samples, denoising steps of calibration, evaluation and timing, evaluation samples).
    # The evaluation once took twice the steps; half the demo's time went to it, and 10 DPM-Solver / DDIM steps
    # are what the models are calibrated with.
    "digits-t2i": (16, 10, 40),
    "digits-sd3": (16, 10, 40),  # a diffusion transformer (StableDiffusion3Pipeline)
    "digits-ddpm": (16, 10, 40),
    "tones-audio": (12, 10, 24),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="prune the bundled models and show the trade-off (what `make demo` runs)"
    )
    parser.add_argument("--out", default="demo-output", help="output folder (must be new; default demo-output)")
    parser.add_argument("--keep-macs", type=float, default=DEFAULT_BUDGET.keep_macs)
    parser.add_argument("--criterion", "--method", dest="criterion", default="ld-pruner")
    parser.add_argument("--models", default=",".join(DEMO_MODELS), help="comma-separated bundled names")
    add_device_options(
        parser,
        dtype_help="load the models in this precision; scoring, the cuts and the evaluation "
        "run in it (default: as stored, fp32)",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.evaluation.comparison import compare_and_report
    from diffprune.models.adapters import CalibrationSettings
    from diffprune.models.loading import load_pipeline
    from diffprune.models.prompts import default_prompts
    from diffprune.pruning.prune import prune

    device, dtype = device_and_dtype_from_args(args)
    out = check_new_output(args.out)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in names if name not in DEMO_MODELS]
    if unknown:
        raise DiffpruneError(f"the demo knows {', '.join(DEMO_MODELS)}; not {', '.join(unknown)}")
    check_budgets(names, args.keep_macs)
    sections = []
    started = time.perf_counter()
    for name in names:
        calibration_samples, steps, evaluation_samples = DEMO_MODELS[name]
        print(f"\n=== {name}: {args.criterion} to {args.keep_macs:.0%} of the denoiser's MACs ===", flush=True)
        original = load_pipeline(name, device=device, torch_dtype=dtype)
        calibration = CalibrationSettings(
            num_samples=calibration_samples,
            num_inference_steps=steps,
            prompts=default_prompts(original),
            guidance_scale=None,
        )
        result = prune(original, args.criterion, Budget(keep_macs=args.keep_macs), calibration=calibration, source=name)
        pruned_folder = result.save(out / f"{name}-pruned")
        print_summary(result.report)
        comparison = compare_and_report(
            {f"{name} (original)": original, f"{name} pruned": result.pipeline},
            f"{name} (original)",
            out / f"{name}-comparison",
            num_samples=evaluation_samples,
            metrics=None,  # the family's quality metrics plus latency and MACs
            num_inference_steps=steps,
            device=device,
        )
        print(comparison["table"], flush=True)
        sections.append({"name": name, "pruned": pruned_folder, "comparison": comparison})
    index = write_index(out, sections, args)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; open {index}")
    return 0


def check_budgets(names: list[str], keep_macs: float) -> None:
    """Fail before any work if a model cannot reach the budget (the error says what it can reach)."""
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.models.loading import load_pipeline
    from diffprune.structure.costs import count_macs, pipeline_cost_inputs
    from diffprune.structure.denoiser import denoiser_of
    from diffprune.structure.units import find_units

    for name in names:
        pipeline = load_pipeline(name)
        inputs, denoiser = pipeline_cost_inputs(pipeline), denoiser_of(pipeline)
        try:
            check_reachable(find_units(denoiser, inputs), Budget(keep_macs=keep_macs), count_macs(denoiser, inputs))
        except DiffpruneError as error:
            raise DiffpruneError(f"{name}: {error}") from None


def write_index(out: Path, sections: list[dict], args) -> Path:
    """One page for a person: each model's summary table and comparison grid, linking the full reports."""
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.evaluation.html_report import data_uri, metrics_table, render_page

    parts = ["<p>Small sample counts so it runs in minutes on a CPU; see docs/results.md for benchmark numbers.</p>"]
    for section in sections:
        comparison = section["comparison"]
        parts.append(f"<h2>{html.escape(section['name'])}</h2>")
        parts.append(metrics_table(comparison["columns"], comparison["rows"]))
        grid = comparison["files"].get("grid")
        if grid and Path(grid).exists():
            uri = data_uri(Path(grid).read_bytes(), "image/png")
            parts.append(f'<p><img class="grid" alt="comparison grid" src="{uri}"></p>')
        links = [f"<a href='{Path(section['pruned']).relative_to(out)}/README.md'>pruned model card</a>"]
        if comparison["files"].get("html"):
            report = Path(comparison["files"]["html"]).relative_to(out)
            links.insert(0, f"<a href='{report}'>full report (samples, audio)</a>")
        parts.append("<p>" + " · ".join(links) + "</p>")
    title = f"diffprune demo: {args.criterion} to {args.keep_macs:.0%} of the denoiser's MACs"
    index = out / "index.html"
    index.write_text(render_page(title, parts))
    return index
