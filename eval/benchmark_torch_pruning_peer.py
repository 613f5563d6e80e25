"""The peer from outside the project: channel pruning with Torch-Pruning, following the Diff-Pruning recipe
(Fang et al. 2023), at the same MAC budgets and with the same FID protocol as benchmark_criteria.py.

    .venv/bin/python eval/benchmark_torch_pruning_peer.py [--budgets 0.9,0.8,0.7,0.6] [--repeats 5] [--eval-samples 64]

Needs the `peer` extra (`pip install -e .[peer]`, i.e. torch-pruning). The recipe: first-order Taylor importance
(TaylorImportance(multivariable=False)) of the denoising loss, gradients accumulated over timesteps t = 0, 1, ...
until the loss falls below `--threshold` x its maximum; group-level channel pruning of the whole UNet with the
output conv left alone. Diff-Pruning needs training images; like diffprune's criteria we use the original's own
calibration samples instead (by default 16 samples, 10 DDIM steps), so both sides see the same data. No fine-tuning.

The pruning ratio is bisected until diffprune.structure.costs.count_macs of the cut UNet lands within --tolerance of each
budget. Three things were needed to make Torch-Pruning work on a diffusers UNet2DModel (see `channel_prune`).
Also reports params, MACs and measured CPU latency of one UNet forward for the cuts at --compare-budgets next
to LD-Pruner cuts at the same budgets (timed together, rounds interleaved), and whether each cut reloads from its
saved folder.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_criteria import mean_std, quality  # noqa: E402
from results_file import hardware, write_section  # noqa: E402

from diffprune.errors import DiffpruneError  # noqa: E402
from diffprune.families import example_inputs  # noqa: E402
from diffprune.models.adapters import CalibrationSettings, adapter_for  # noqa: E402
from diffprune.models.loading import load_pipeline  # noqa: E402
from diffprune.pruning.prune import prune  # noqa: E402
from diffprune.structure.costs import count_macs, count_parameters  # noqa: E402
from diffprune.structure.selection import Budget  # noqa: E402
from diffprune.timing import per_round_ratios, spread, time_interleaved  # noqa: E402

MODEL = "digits-ddpm"


def accumulate_taylor_gradients(unet, scheduler, clean: torch.Tensor, threshold: float) -> tuple[dict, int]:
    """Diff-Pruning's importance data: the denoising loss at t = 0, 1, 2, ... summed into the gradients, stopping
    once the loss drops below threshold x its maximum (Diff-Pruning's argument: the noisy late steps carry little
    of what the model has learned, so their gradients would mostly blur the estimate).
    Returns the accumulated gradients by parameter name and the number of timesteps used."""
    unet.eval().zero_grad()
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    loss_max, steps = 0.0, 0
    for step in range(scheduler.config.num_train_timesteps):
        timesteps = torch.full((clean.shape[0],), step, dtype=torch.long)
        noisy = scheduler.add_noise(clean, noise, timesteps)
        loss = torch.nn.functional.mse_loss(unet(noisy, timesteps).sample, noise)
        loss.backward()
        steps += 1
        loss_max = max(loss_max, loss.item())
        if loss.item() < loss_max * threshold:
            break
    gradients = {name: parameter.grad.detach().clone() for name, parameter in unet.named_parameters()}
    unet.zero_grad(set_to_none=True)
    return gradients, steps


def channel_prune(unet, gradients: dict, ratio: float):
    """A pruned copy of `unet` (the original keeps its shapes) at Torch-Pruning's channel ratio `ratio`."""
    import torch_pruning as tp
    from diffusers.models.attention_processor import Attention
    from diffusers.models.resnet import Downsample2D, Upsample2D

    model = copy.deepcopy(unet).eval()
    for name, parameter in model.named_parameters():
        parameter.grad = gradients[name].clone()
    # Fix 1: q/k/v are split into heads by a view; without the head count Torch-Pruning cuts their channels
    # anywhere and the survivors shift between heads. With it, the same positions go from every head.
    heads = {
        layer: module.heads
        for module in model.modules()
        if isinstance(module, Attention)
        for layer in (module.to_q, module.to_k, module.to_v)
    }
    inputs = example_inputs(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MetaPruner(
            model,
            inputs,
            importance=tp.importance.TaylorImportance(multivariable=False),
            pruning_ratio=ratio,
            # Fix 2: GroupNorm makes Torch-Pruning cut the same count from every group (4-8 channels per group
            # here), so a uniform per-layer ratio only reaches a few coarse MAC levels (0.71, 0.57, 0.35 on the
            # layers_per_block=1 digits-ddpm); ranking globally across layers lets the MACs match a budget.
            global_pruning=True,
            ignored_layers=[model.conv_out],
            num_heads=heads,
            in_channel_groups={},
            out_channel_groups={},  # fresh dicts: the library's defaults are shared
        )
        for group in pruner.step(interactive=True):
            group.prune()
    # Fix 3: the resamplers assert their input width against a stored attribute that pruning does not update.
    for module in model.modules():
        if isinstance(module, (Downsample2D, Upsample2D)):
            module.channels = module.conv.in_channels
            module.out_channels = module.conv.out_channels
    model.zero_grad(set_to_none=True)
    return model


def prune_to_macs(unet, gradients: dict, keep: float, base_macs: int, tolerance: float, max_trials: int = 16):
    """Bisect Torch-Pruning's ratio until the cut keeps `keep` of the MACs (within `tolerance`, relative).
    MACs fall with the ratio in steps, not strictly monotonically, so the closest cut seen is returned."""
    low, high, best = 0.0, 0.95, None
    for _ in range(max_trials):
        ratio = (low + high) / 2
        model = channel_prune(unet, gradients, ratio)
        kept = count_macs(model) / base_macs
        if best is None or abs(kept - keep) < abs(best[1] - keep):
            best = (model, kept, ratio)
        if abs(kept / keep - 1) <= tolerance / 4:
            break
        low, high = (ratio, high) if kept > keep else (low, ratio)
    model, kept, ratio = best
    if abs(kept / keep - 1) > tolerance:
        print(f"keep {keep}: closest cut keeps {kept:.3f} of the MACs, outside the tolerance", flush=True)
    return model, kept, ratio


def pipeline_with(original, unet):
    from diffusers import DDPMScheduler

    return type(original)(unet=unet, scheduler=DDPMScheduler.from_config(original.scheduler.config))


def reload_error(save) -> str | None:
    """None if the saved cut reloads with stock diffusers, else the first line of the error. trust_remote_code
    lets a diffprune cut bring its own module code (unet/diffprune.py); a Torch-Pruning cut has none to bring."""
    from diffusers import DiffusionPipeline

    with tempfile.TemporaryDirectory() as folder:
        try:
            save(Path(folder) / "cut")
            DiffusionPipeline.from_pretrained(str(Path(folder) / "cut"), trust_remote_code=True)
        except Exception as error:  # noqa: BLE001 - any failure is the finding we report
            message = str(error).strip().splitlines()[0].split(". If you want")[0]
            return f"{type(error).__name__}: {' '.join(message.split())[:160]}"
    return None


def latency_ratios(unets: dict, rounds: int, warmup: int) -> dict:
    """{label: (median ms of one forward at batch 1, speedup over the first UNet: the median of per-round ratios
    with its 95% CI)}: every UNet called once per round, in alternating order (diffprune.timing.time_interleaved),
    so the machine's drift hits every model alike and each round compares like with like."""
    reference = next(iter(unets))
    inputs = example_inputs(unets[reference], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        timed = time_interleaved(
            {label: lambda unet=unet: unet(**inputs) for label, unet in unets.items()}, rounds, warmup
        )
    base = timed.times_ms[reference]
    return {
        label: (statistics.median(times), spread(per_round_ratios(base, times)))
        for label, times in timed.times_ms.items()
    }


def speedup_cell(ratios: dict) -> str:
    interval = ratios["ci95"]
    return f"{ratios['median']:.2f}x" + (f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else "")


def compare_cuts(original, tp_cuts: dict, args) -> list[str]:
    """Params, MACs, latency, FID and reloadability of each Torch-Pruning cut in {keep: (unet, fids)} next to
    an LD-Pruner cut at the same budget."""
    unet = original.unet
    cuts, missing = {}, []
    for keep, (tp_cut, tp_fids) in tp_cuts.items():
        reload = reload_error(lambda path, cut=tp_cut: pipeline_with(original, cut).save_pretrained(path))
        cuts[f"torch-pruning (Diff-Pruning) at {keep:g}"] = (tp_cut, tp_fids, reload)
        try:
            ld_pruner = prune(
                original,
                "ld-pruner",
                Budget(keep_macs=keep),
                show_progress=False,
                calibration=CalibrationSettings(
                    num_samples=args.calibration_samples, num_inference_steps=args.inference_steps
                ),
            )
        except DiffpruneError as error:  # e.g. a budget below what removing every unit reaches
            missing.append(f"ld-pruner at keep_macs {keep:g}: {error}")
            print(missing[-1], flush=True)
            continue
        ld_fids = [
            quality(ld_pruner.pipeline, original, MODEL, args, seed=1000 * repeat)[0] for repeat in range(args.repeats)
        ]
        cuts[f"ld-pruner (diffprune) at {keep:g}"] = (ld_pruner.pipeline.unet, ld_fids, reload_error(ld_pruner.save))
    latency = latency_ratios(
        {"original": unet, **{label: cut[0] for label, cut in cuts.items()}}, args.latency_rounds, args.latency_warmup
    )
    base_macs, base_params = count_macs(unet), count_parameters(unet)
    lines = [
        f"Same run, cuts at keep_macs {', '.join(f'{keep:g}' for keep in tp_cuts)}: one UNet forward (batch 1) on "
        f"CPU, {args.latency_rounds} rounds after {args.latency_warmup} warm-up calls each, every UNet once per "
        "round in alternating order; speedup = median of the per-round ratios to the original, with its 95% CI.",
        "",
        "| cut | MACs kept | params kept | UNet latency (median) | speedup (95% CI) | FID vs original "
        "| reloads from its folder |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| original | 1.000 | 1.000 | {latency['original'][0]:.2f} ms | 1.00 | – | yes |",
    ]
    for label, (model, fids, reload) in cuts.items():
        lines.append(
            f"| {label} | {count_macs(model) / base_macs:.3f} | {count_parameters(model) / base_params:.3f} | "
            f"{latency[label][0]:.2f} ms | {speedup_cell(latency[label][1])} | {mean_std(fids)} | "
            + ("yes" if reload is None else f"no: `{reload}`")
            + " |"
        )
    lines += [f"\nNo LD-Pruner cut: {line}." for line in missing]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="0.9,0.8,0.7,0.6")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eval-samples", type=int, default=64)
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--calibration-samples", type=int, default=16)
    parser.add_argument("--inference-steps", type=int, default=10)
    parser.add_argument("--threshold", type=float, default=0.05, help="Diff-Pruning's loss threshold")
    parser.add_argument("--tolerance", type=float, default=0.02, help="relative MACs tolerance")
    parser.add_argument(
        "--compare-budgets",
        default="0.7,0.75",
        help="budgets where the cut is compared with an LD-Pruner cut (cost, latency, reload)",
    )
    parser.add_argument("--latency-rounds", type=int, default=60)
    parser.add_argument("--latency-warmup", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/results.md alone")
    args = parser.parse_args()
    args.budgets = [float(b) for b in args.budgets.split(",")]
    args.compare_budgets = [float(b) for b in args.compare_budgets.split(",")]
    torch.set_num_threads(1)
    started = time.perf_counter()

    original = load_pipeline(MODEL)
    unet = original.unet.eval()
    base_macs, base_params = count_macs(unet), count_parameters(unet)
    calibration = CalibrationSettings(
        num_samples=args.calibration_samples, num_inference_steps=args.inference_steps, show_progress=False
    )
    clean = adapter_for(original, calibration).final_latents()[:, 0]
    gradients, taylor_steps = accumulate_taylor_gradients(unet, original.scheduler, clean, args.threshold)
    print(f"Taylor gradients accumulated over timesteps 0..{taylor_steps - 1}", flush=True)

    rows, cuts = [], {}
    for keep in sorted(set(args.budgets + args.compare_budgets), reverse=True):
        cut_started = time.perf_counter()
        model, kept, ratio = prune_to_macs(unet, gradients, keep, base_macs, args.tolerance)
        cut_seconds = time.perf_counter() - cut_started
        pipeline = pipeline_with(original, model)
        fids = [quality(pipeline, original, MODEL, args, seed=1000 * repeat)[0] for repeat in range(args.repeats)]
        cuts[keep] = (model, fids)
        rows.append(
            {
                "keep": keep,
                "kept": kept,
                "ratio": ratio,
                "params": count_parameters(model) / base_params,
                "fid": fids,
                "seconds": cut_seconds,
            }
        )
        print(
            f"torch-pruning keep {keep:g}: ratio {ratio:.3f} kept {kept:.3f} FID {statistics.mean(fids):.2f}",
            flush=True,
        )
    comparison = compare_cuts(original, {keep: cuts[keep] for keep in args.compare_budgets}, args)

    command = " ".join(["python"] + sys.argv)
    lines = [
        "## Peer from outside the project: Torch-Pruning with the Diff-Pruning recipe (no fine-tuning)",
        "",
        f"Command: `{command}` · hardware: {hardware()} · torch-pruning {_torch_pruning_version()} · "
        f"total {time.perf_counter() - started:.0f} s",
        "",
        f"{MODEL}: channel pruning of the whole UNet (output conv left alone) with first-order Taylor importance "
        f"of the denoising loss, gradients accumulated over timesteps 0..{taylor_steps - 1} (Diff-Pruning's stop "
        f"at loss < {args.threshold} x max), on the original's own {args.calibration_samples} calibration samples "
        f"({args.inference_steps} DDIM steps) instead of training images. Global ranking across layers, since "
        "GroupNorm makes a uniform per-layer ratio reach only a few MAC levels here; the ratio is bisected until "
        "diffprune.structure.costs.count_macs lands on the budget. FID exactly as in the criteria table: bundled feature "
        f"network against the original's samples, {args.eval_samples} samples, {args.eval_steps} steps, "
        f"mean ± std over {args.repeats} sample seeds.",
        "",
        "| method | keep_macs | MACs kept (measured) | params kept | channel ratio | FID vs original | cut time |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| torch-pruning (Diff-Pruning) | {row['keep']:g} | {row['kept']:.3f} | {row['params']:.3f} | "
            f"{row['ratio']:.3f} | {mean_std(row['fid'])} | {row['seconds']:.0f} s |"
        )
    lines += [
        "",
        *comparison,
        "",
        "Torch-Pruning keeps each module and changes its weight shapes, so the saved config (block_out_channels "
        "etc.) no longer describes the weights and the cut cannot be rebuilt from config (the error above); it "
        "would have to be pickled whole, which the house rules forbid. That is why diffprune cuts whole units "
        "instead: the remaining modules keep their shapes, the config records what was removed, and stock "
        "diffusers reloads it.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("torch-pruning-peer", text)


def _torch_pruning_version() -> str:
    return importlib.metadata.version("torch-pruning")


if __name__ == "__main__":
    main()
