"""`diffprune eval MODEL`: FID, CLIP/CLAP score, latency and MACs of one model, optionally against a reference."""

from __future__ import annotations

import json

from diffprune.cli.evaluation_options import add_evaluation_options, read_prompts_option, settings_from_args
from diffprune.models import zoo


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="measure quality, speed and cost of a model (against a reference)")
    parser.add_argument("model", help=f"pipeline folder, hub id, or bundled name ({', '.join(zoo.PIPELINES)})")
    parser.add_argument("--reference", help="the model to compare with (usually the unpruned original)")
    parser.add_argument(
        "--metrics",
        help="comma-separated: fid, clip, clap, latency, macs (default: the family's quality metrics, latency, macs)",
    )
    parser.add_argument("--out", help="write the report as JSON to this file")
    add_evaluation_options(parser, default_num_samples=16)
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.evaluation.running import evaluate
    from diffprune.evaluation.tables import format_table, summary_row

    report = evaluate(
        args.model,
        reference=args.reference,
        metrics=args.metrics,
        num_samples=args.num_samples,
        out=args.out,
        prompts=read_prompts_option(args),
        **settings_from_args(args),
    )
    rows = [summary_row(report["model"], report["results"])]
    if report["reference"]:
        rows.insert(0, summary_row(report["reference"], report["reference_results"]))
    print(format_table(rows))
    if report["scored_with"]:
        print("scored with: " + ", ".join(f"{metric}: {network}" for metric, network in report["scored_with"].items()))
    if args.out:
        print(f"wrote {args.out}")
    else:
        print(json.dumps(report["results"], indent=2))
    return 0
