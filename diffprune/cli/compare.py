"""`diffprune compare A B [C ...]`: the same prompts and seeds through every model; grid, HTML report, JSON."""

from __future__ import annotations

from diffprune.cli.evaluation_options import add_evaluation_options, read_prompts_option, settings_from_args
from diffprune.errors import DiffpruneError


def register(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="side-by-side samples and metrics of several models")
    parser.add_argument(
        "models", nargs="+", help="pipeline folders, hub ids or bundled names; the first is the reference"
    )
    parser.add_argument("--out", required=True, help="new folder for grid.png, report.html, report.json, samples/")
    parser.add_argument(
        "--metrics",
        default="macs,latency",
        help="comma-separated: fid, clip, clap, latency, macs (default: macs,latency)",
    )
    parser.add_argument("--max-grid-rows", type=int, default=16, help="rows shown in the grid (default: 16)")
    add_evaluation_options(parser, default_num_samples=None)
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.evaluation.comparison import compare_and_report

    if len(args.models) < 2:
        raise DiffpruneError("compare needs at least two models (the first is the reference)")
    labels = unique_labels(args.models)
    summary = compare_and_report(
        dict(zip(labels, args.models, strict=True)),
        reference_label=labels[0],
        out_folder=args.out,
        prompts=read_prompts_option(args),
        num_samples=args.num_samples,
        metrics=args.metrics,
        max_grid_rows=args.max_grid_rows,
        **settings_from_args(args),
    )
    print(summary["table"])
    print(f"wrote {summary['files']['html']} and {summary['files']['grid']}")
    return 0


def unique_labels(models: list[str]) -> list[str]:
    """The names as given; a name given twice gets #2, #3 so columns stay distinguishable."""
    labels, seen = [], {}
    for model in models:
        seen[model] = seen.get(model, 0) + 1
        labels.append(model if seen[model] == 1 else f"{model} #{seen[model]}")
    return labels
