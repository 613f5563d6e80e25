"""`diffprune units MODEL`: the prunable units of a pipeline's UNet with their costs."""

from __future__ import annotations

import json

from diffprune.models import zoo


def register(subparsers) -> None:
    parser = subparsers.add_parser("units", help="list the prunable units of a pipeline's UNet")
    parser.add_argument("model", help=f"pipeline folder, hub id, or bundled name ({', '.join(zoo.PIPELINES)})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.models.loading import load_pipeline
    from diffprune.structure.costs import count_macs, pipeline_cost_inputs
    from diffprune.structure.denoiser import denoiser_of
    from diffprune.structure.units import find_units

    pipeline = load_pipeline(args.model)
    denoiser, inputs = denoiser_of(pipeline), pipeline_cost_inputs(pipeline)
    units = find_units(denoiser, inputs)
    total = count_macs(denoiser, inputs)
    rows = [
        {"name": u.name, "kind": u.kind, "params": u.params, "macs": u.macs, "macs_share": u.macs / total}
        for u in units
    ]
    if args.json:
        print(json.dumps({"total_macs": total, "units": rows}, indent=2))
        return 0
    width = max(len(row["name"]) for row in rows) if rows else 4
    print(f"{'name':<{width}}  {'kind':<17} {'params':>12} {'MACs %':>7}")
    for row in rows:
        print(f"{row['name']:<{width}}  {row['kind']:<17} {row['params']:>12,} {100 * row['macs_share']:>6.2f}%")
    print(f"{len(rows)} units; {type(denoiser).__name__} forward: {total:,} MACs as the pipeline calls it, batch 1")
    return 0
