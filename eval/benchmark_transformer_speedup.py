"""Measured speedup of cut diffusion transformers shaped like SD3-medium and FLUX.1: does the MACs reduction turn
into latency?

Builds each transformer with random weights (speed depends on shapes, not values) at the pipeline's resolution
and text length, then cuts it with diffprune.remove_units to about 0.8 and 0.7 of its MACs, two ways:
  * depth: whole blocks (the stock class with fewer blocks, as Flux.1 Lite and SANA-1.5 cut);
  * branches: feed-forward branches inside blocks (the Pruned* subclass);
removing the largest units first until the kept MACs are at most the target, as a diffprune budget does
(weights are random, so no importance criterion would mean anything; blocks
of one stack have equal cost, so which ones go does not change the time). MACs come from
diffprune.structure.costs.count_macs on each model; latency from diffprune.timing.time_interleaved: each cut
timed together with the dense model (both warmed up, then rounds in alternating order, GPU-synchronised; 20 rounds
after 5 warm-up calls on CUDA, 5 after 2 on a CPU), its speedup the median of the per-round ratios with their IQR.
Timed as the pipelines call the transformer, in eager mode: SD3 with classifier-free guidance (batch doubled, 77
CLIP + 256 T5 text tokens), FLUX.1-dev with its guidance embedding (one pass, 512 text tokens), at batch 1 and at
--batch-sizes' larger values.

Full size needs a GPU (FLUX.1 is about 12 B parameters, 24 GB in bf16; the model is built directly on the device
in the timed dtype). --scale S divides widths and depths by S for a smoke run on a CPU.

    python eval/benchmark_transformer_speedup.py --device cuda --dtype bf16 --batch-sizes 1,8
    python eval/benchmark_transformer_speedup.py --device cpu --scale 8 --resolution 256 --batch-sizes 1,4 --runs 5
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import hardware, write_section  # noqa: E402

from diffprune.devices import resolve_device, torch_dtype  # noqa: E402
from diffprune.structure.costs import DEFAULT_RUNS, DEFAULT_WARMUP, count_macs, count_parameters  # noqa: E402
from diffprune.structure.surgery import remove_units  # noqa: E402
from diffprune.structure.units import find_units, is_depth_unit  # noqa: E402
from diffprune.timing import per_round_ratios, spread, time_interleaved, time_summary  # noqa: E402

BRANCH_KINDS = ("feed_forward", "context_feed_forward")


def sd3_medium(scale: int, resolution: int):
    """SD3-medium's transformer (24 joint blocks, 24 heads of 64, T5-XXL width 4096, pooled 2048, 16 latent
    channels, patch 2) and how StableDiffusion3Pipeline calls it."""
    from diffusers import SD3Transformer2DModel

    heads = max(1, 24 // scale)
    model = SD3Transformer2DModel(
        sample_size=resolution // 8,
        patch_size=2,
        in_channels=16,
        num_layers=max(2, 24 // scale),
        attention_head_dim=64,
        num_attention_heads=heads,
        joint_attention_dim=4096 // scale,
        caption_projection_dim=64 * heads,
        pooled_projection_dim=2048 // scale,
        out_channels=16,
        pos_embed_max_size=192,
    )

    def inputs(batch, device, dtype):
        guided = 2 * batch  # classifier-free guidance: unconditional and conditional halves in one call
        side = resolution // 8
        return {
            "hidden_states": torch.randn(guided, 16, side, side, device=device, dtype=dtype),
            "encoder_hidden_states": torch.randn(guided, 77 + 256, 4096 // scale, device=device, dtype=dtype),
            "pooled_projections": torch.randn(guided, 2048 // scale, device=device, dtype=dtype),
            "timestep": torch.full((guided,), 500.0, device=device, dtype=dtype),
        }

    return model, inputs


def flux(scale: int, resolution: int):
    """FLUX.1-dev's transformer (19 double- and 38 single-stream blocks, 24 heads of 128, T5-XXL width 4096,
    pooled 768, packed 2x2 latents of 16 channels, guidance embedding) and how FluxPipeline calls it."""
    from diffusers import FluxTransformer2DModel

    model = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=max(2, 19 // scale),
        num_single_layers=max(2, 38 // scale),
        attention_head_dim=128,
        num_attention_heads=max(1, 24 // scale),
        joint_attention_dim=4096 // scale,
        pooled_projection_dim=768 // scale,
        guidance_embeds=True,
        axes_dims_rope=(16, 56, 56),
    )

    def inputs(batch, device, dtype):
        side = resolution // 16  # 8x VAE, then 2x2 packing
        rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        image_ids = torch.stack([torch.zeros(side * side), rows.flatten(), cols.flatten()], dim=1)
        return {
            "hidden_states": torch.randn(batch, side * side, 64, device=device, dtype=dtype),
            "encoder_hidden_states": torch.randn(batch, 512, 4096 // scale, device=device, dtype=dtype),
            "pooled_projections": torch.randn(batch, 768 // scale, device=device, dtype=dtype),
            "timestep": torch.full((batch,), 0.5, device=device, dtype=dtype),
            "img_ids": image_ids.to(device=device, dtype=dtype),
            "txt_ids": torch.zeros(512, 3, device=device, dtype=dtype),
            "guidance": torch.full((batch,), 3.5, device=device, dtype=dtype),
        }

    return model, inputs


SHAPES = {"sd3-medium": sd3_medium, "flux": flux}


def build(shape, args, device, dtype):
    """The model built directly on `device` in `dtype` (a full-size FLUX never exists in fp32 anywhere)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            model, inputs = SHAPES[shape](args.scale, args.resolution)
    finally:
        torch.set_default_dtype(default)
    return model.eval().requires_grad_(False), inputs


def largest_first(units, total_macs: int, keep: float) -> list[str]:
    """Non-overlapping units, largest MACs first, until at most keep * total_macs remain."""
    remaining, chosen = total_macs, []
    for unit in sorted(units, key=lambda u: u.macs, reverse=True):
        if remaining <= keep * total_macs:
            break
        if not any(other.contains(unit) or unit.contains(other) for other in chosen):
            chosen.append(unit)
            remaining -= unit.macs
    return [unit.name for unit in chosen]


def run_shape(shape, args, device, dtype) -> list[dict]:
    model, make_inputs = build(shape, args, device, dtype)
    probe = make_inputs(1, device, dtype)
    units = find_units(model, probe)
    total = count_macs(model, probe)
    cuts = {"dense": []}
    for keep in args.keep:
        # Every stack keeps its first block (a stack may not be emptied; at --scale, FLUX has two double blocks).
        blocks = [u for u in units if is_depth_unit(u) and not u.name.endswith(".0")]
        cuts[f"depth {keep}"] = largest_first(blocks, total, keep)
        cuts[f"branches {keep}"] = largest_first([u for u in units if u.kind in BRANCH_KINDS], total, keep)
    rows = []
    dense_inputs = {batch: make_inputs(batch, device, dtype) for batch in args.batch_sizes}
    for label, names in cuts.items():
        cut = model if not names else remove_units(model, names)
        macs = count_macs(cut, probe)
        for batch in args.batch_sizes:
            inputs = dense_inputs[batch]
            # The cut timed together with the dense model (diffprune.timing: both warmed up, then rounds in
            # alternating order); one cut at a time, so a full-size FLUX needs room for two models, not five.
            functions = {"dense": partial(model, **inputs), label: partial(cut, **inputs)}
            rounds, warmup = args.runs or DEFAULT_RUNS[device.type], args.warmup or DEFAULT_WARMUP[device.type]
            with torch.inference_mode():
                timed = time_interleaved(functions, rounds, warmup, device)
            times = timed.times_ms[label]
            ratios = spread(per_round_ratios(timed.times_ms["dense"], times))
            rows.append(
                {
                    "shape": shape,
                    "cut": label,
                    "removed": len(names),
                    "params": count_parameters(cut),
                    "macs_kept": macs / total,
                    "batch": batch,
                    "model_batch": inputs["hidden_states"].shape[0],
                    "median_ms": statistics.median(times),
                    "iqr_ms": time_summary(times)["iqr_ms"],
                    "dense_median_ms": statistics.median(timed.times_ms["dense"]),
                    "speedup": ratios["median"],
                    "speedup_iqr": ratios["iqr"],
                    "rounds": rounds,
                    "warmup": warmup,
                }
            )
            print(
                f"{shape} {label:14s} batch {batch}: {rows[-1]['median_ms']:.1f} ms, speedup {ratios['median']:.2f} "
                f"(MACs kept {macs / total:.3f})"
            )
        if cut is not model:
            del cut
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    del model
    gc.collect()
    return rows


def table(rows) -> str:
    lines = [
        "| shape | cut (keep MACs) | units removed | MACs kept | params (M) | batch (transformer batch) | median ms "
        "(IQR) | speedup vs dense (IQR) |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['shape']} | {row['cut']} | {row['removed']} | {row['macs_kept']:.3f} | {row['params'] / 1e6:.1f} | "
            f"{row['batch']} ({row['model_batch']}) | {row['median_ms']:.1f} ({row['iqr_ms']:.1f}) | "
            f"{row['speedup']:.2f}x ({row['speedup_iqr'][0]:.2f}-{row['speedup_iqr'][1]:.2f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if a GPU is visible, else cpu)")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--shapes", default="sd3-medium,flux")
    parser.add_argument("--resolution", type=int, default=1024, help="image side in pixels")
    parser.add_argument("--scale", type=int, default=1, help="divide widths and depths by this (CPU smoke runs)")
    parser.add_argument("--keep", default="0.8,0.7", help="fractions of MACs to keep")
    parser.add_argument("--batch-sizes", default="1,8", help="images per call (SD3's guidance doubles them)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/results.md alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(resolve_device(args.device))
    dtype = torch_dtype(args.dtype or ("bf16" if device.type == "cuda" else "fp32"), device)
    args.keep = [float(k) for k in args.keep.split(",")]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    started = time.perf_counter()
    rows = []
    for shape in args.shapes.split(","):
        rows += run_shape(shape, args, device, dtype)
    text = table(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    if not args.no_write:
        command = " ".join(["python"] + sys.argv)
        size = "full size" if args.scale == 1 else f"widths and depths divided by {args.scale}"
        section = (
            f"## Diffusion-transformer speedup ({device.type}, {size})\n\nCommand: `{command}` · hardware: "
            f"{hardware()} · dtype {str(dtype).removeprefix('torch.')} · eager · {time.perf_counter() - started:.0f} s"
            f"\n\nTransformer forward as the pipeline calls it at {args.resolution}x{args.resolution} (SD3 with "
            "classifier-free guidance, so its transformer batch is twice the images; FLUX.1-dev one pass). Cuts "
            "remove the largest units first: `depth` whole blocks, `branches` feed-forward branches inside blocks. "
            "Speedups are against the dense model in the same run.\n\n" + text
        )
        write_section(
            f"transformer-speedup-{device.type}" + ("" if args.scale == 1 else f"-scale{args.scale}"), section
        )


if __name__ == "__main__":
    main()
