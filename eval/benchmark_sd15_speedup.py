"""Measured speedup of cut Stable-Diffusion-1.5-shaped UNets: does the MACs reduction turn into latency?

Builds SD-1.5's UNet (and, for whole-pipeline timing, SD's text encoder and VAE shapes plus an offline
tokenizer) with random weights, since speed depends on shapes, not values. Cuts it with
diffprune.remove_units to:
  * a BK-SDM-Base-like set: the mid block and the second resnet + attention pair of each down stage, plus the
    second attention of each cross-attention up stage (BK-SDM also drops up-stage resnets, but those take skip
    concatenations, change width and are not bypassable units here);
  * sets keeping about 0.8 / 0.7 / 0.6 of the MACs, removing units largest-MACs first (weights are random, so
    no importance criterion would mean anything).
MACs come from diffprune.structure.costs.count_macs on each cut model; latency from
diffprune.evaluation.latency.measure_latencies: all sets held at once and timed together, every model warmed up,
then rounds that time each model once in alternating order (GPU-synchronised), so a speedup is the median of the
per-round ratios against the dense model, with their interquartile range (defaults: latency.DEFAULT_ROUNDS).
Timed as users run SD: the UNet at the batch the pipeline hands it (classifier-free guidance doubles it,
--guidance-scale 7.5) and the whole call with guidance; a pipeline that saves more than its UNet calls can is
flagged as a measurement problem instead of given a speedup. Each mode is compared with the dense model in the
same mode and batch:
eager always; --channels-last adds the UNet in channels_last; --compile adds torch.compile (on CUDA
mode="reduce-overhead", CUDA graphs; compilation happens in the warm-up and is not timed).
Writes JSON and prints a Markdown table; CUDA runs go to the docs/results.md section sd15-speedup-gpu.

    python eval/benchmark_sd15_speedup.py --device cpu --parts unet --batch-sizes 1 --runs 3 --warmup 1
    python eval/benchmark_sd15_speedup.py --device cuda --dtype fp16 --batch-sizes 1,8 --channels-last --compile
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import cpu_name, write_section  # noqa: E402

import diffprune  # noqa: E402
from diffprune.devices import resolve_device, torch_dtype  # noqa: E402
from diffprune.evaluation.latency import LatencySettings, measure_latencies, speedups  # noqa: E402
from diffprune.evaluation.report_keys import current_names  # noqa: E402
from diffprune.models.components import with_unet  # noqa: E402
from diffprune.structure.costs import count_macs, count_parameters  # noqa: E402
from diffprune.structure.units import find_units  # noqa: E402

LATENT_CHANNELS = 4
VAE_SCALE = 8


def sd15_unet(resolution: int, scale: int = 1):
    """SD-1.5's UNet; scale S divides its widths by S (a smoke run's tiny stand-in with the same layout)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=resolution // VAE_SCALE,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        block_out_channels=tuple(width // scale for width in (320, 640, 1280, 1280)),
        layers_per_block=2,
        norm_num_groups=math.gcd(32, 320 // scale),
        cross_attention_dim=768 // scale,
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    ).eval()


def sd15_pipeline(unet, scale: int = 1):
    """SD-1.5's pipeline shape around `unet`: CLIP ViT-L/14 text tower, SD's VAE, a PNDM scheduler (widths
    divided by `scale`, as the UNet's)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    # No CLIP vocabulary offline: a letters-only BPE vocabulary gives real token ids of the right length (77).
    symbols = list("abcdefghijklmnopqrstuvwxyz")
    tokens = ["<|startoftext|>", "<|endoftext|>", "!"] + symbols + [s + "</w>" for s in symbols]
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768 // scale,
            intermediate_size=3072 // scale,
            num_attention_heads=12,
            num_hidden_layers=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    ).eval()
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=LATENT_CHANNELS,
        block_out_channels=tuple(width // scale for width in (128, 256, 512, 512)),
        layers_per_block=2,
        sample_size=unet.config.sample_size * VAE_SCALE,
        norm_num_groups=math.gcd(32, 128 // scale),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    ).eval()
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1
    )
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def bk_sdm_like_units(unit_names: set[str]) -> list[str]:
    wanted = ["mid_block"]
    for stage in range(4):
        wanted += [f"down_blocks.{stage}.resnets.1", f"down_blocks.{stage}.attentions.1"]
    wanted += [f"up_blocks.{stage}.attentions.1" for stage in (1, 2, 3)]
    return [name for name in wanted if name in unit_names]


def greedy_units_for_macs(units, total_macs: int, keep: float) -> list[str]:
    """Largest-MACs-first removal of non-overlapping units until the kept MACs would fall below keep * total."""
    target = keep * total_macs
    remaining, chosen = total_macs, []
    for unit in sorted(units, key=lambda u: u.macs, reverse=True):
        if any(other.contains(unit) or unit.contains(other) for other in chosen):
            continue
        if remaining - unit.macs >= target:
            chosen.append(unit)
            remaining -= unit.macs
    return [unit.name for unit in chosen]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if a GPU is visible, else cpu)")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], help="default: fp16 on CUDA, fp32 on CPU")
    parser.add_argument("--resolution", type=int, default=512, help="image side in pixels (latent side = /8)")
    parser.add_argument(
        "--scale", type=int, default=1, help="divide every width by this (a smoke run on a CPU; 1 = SD-1.5's shape)"
    )
    parser.add_argument("--steps", type=int, default=25, help="denoising steps of the timed pipeline call")
    parser.add_argument("--guidance-scale", type=float, default=7.5, help="classifier-free guidance (SD's default 7.5)")
    parser.add_argument(
        "--batch-sizes", default=None, help="comma-separated images per call (default: 1,8 on CUDA, 1 on CPU)"
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="timed rounds (default per part: diffprune.evaluation.latency)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="warm-up calls per model (default per part, likewise)")
    parser.add_argument("--no-bk-sdm-like", action="store_true", help="time only the dense model and the --keep sets")
    parser.add_argument("--parts", default="unet,pipeline", help="unet, pipeline or both (default both)")
    parser.add_argument("--keep", default="0.8,0.7,0.6", help="MACs fractions for the greedy sets")
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile'd UNets (CUDA: reduce-overhead)"
    )
    parser.add_argument("--channels-last", action="store_true", help="also time the UNets in channels_last")
    parser.add_argument("--no-eager", action="store_true", help="time only the modes asked for (--compile, ...)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--out", default=None, help="JSON results file (default: eval/results/sd15_speedup_<device>.json)"
    )
    parser.add_argument("--no-results-md", action="store_true", help="do not write the table into docs/results.md")
    return parser.parse_args()


def modes(args) -> dict[str, dict]:
    """Timing modes: eager (unless --no-eager), plus channels_last and compiled when asked (compiled in
    channels_last too when both are asked, as one would deploy it)."""
    chosen = {} if args.no_eager else {"eager": {"compile": False, "channels_last": False}}
    if args.channels_last:
        chosen["channels-last"] = {"compile": False, "channels_last": True}
    if args.compile:
        chosen["compiled" + (", channels-last" if args.channels_last else "")] = {
            "compile": True,
            "channels_last": args.channels_last,
        }
    return chosen


def hardware(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} torch thread(s) of {os.cpu_count()} logical CPUs)"


def main() -> None:
    args = parse_args()
    if not modes(args):
        raise SystemExit("--no-eager leaves nothing to time: add --compile or --channels-last")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # .to(dtype) warns about fp32-only modules these models do not have
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = resolve_device(args.device)
    on_gpu = torch.device(args.device).type == "cuda"
    dtype_name = args.dtype or ("fp16" if on_gpu else "fp32")
    dtype = torch_dtype(dtype_name, args.device)
    parts = {part.strip() for part in args.parts.split(",")}
    batch_sizes = [int(size) for size in (args.batch_sizes or ("1,8" if on_gpu else "1")).split(",")]
    started = time.time()
    load_at_start = os.getloadavg()[0]  # other jobs on the machine make CPU timings noisy; the report says how noisy

    torch.manual_seed(0)
    # The whole pipeline, also for UNet-only timing: it decides the UNet's batch (guidance) and text length.
    pipeline = sd15_pipeline(sd15_unet(args.resolution, args.scale), args.scale).to(args.device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    dense = pipeline.unet
    units = find_units(dense)  # probes shapes and counts unit MACs at batch 1, this resolution, on the device
    dense_macs = count_macs(dense)
    names = {unit.name for unit in units}
    unit_sets = {"dense": []} if args.no_bk_sdm_like else {"dense": [], "bk-sdm-like": bk_sdm_like_units(names)}
    for keep in (float(value) for value in args.keep.split(",")):
        unit_sets[f"greedy {keep:.1f} MACs"] = greedy_units_for_macs(units, dense_macs, keep)

    # Every set is held at once and timed together with the dense model (diffprune.evaluation.latency: warm-up,
    # then alternating rounds), so each speedup is a median of per-round ratios against the dense model.
    pipelines, costs = {}, {}
    for label, removed in tqdm(unit_sets.items(), desc="cutting"):
        unet = diffprune.remove_units(dense, removed) if removed else dense
        pipelines[label] = with_unet(pipeline, unet) if removed else pipeline
        pipelines[label].set_progress_bar_config(disable=True)
        costs[label] = {"params": count_parameters(unet), "macs": count_macs(unet)}  # counted on the cut model
    rows = []
    for mode, options in modes(args).items():
        for batch_size in batch_sizes:
            settings = LatencySettings(
                batch_size=batch_size,
                runs=args.runs,
                warmup=args.warmup,
                num_inference_steps=args.steps,
                guidance_scale=args.guidance_scale,
                measure_denoiser="unet" in parts,
                measure_pipeline="pipeline" in parts,
                **options,
            )
            print(f"timing {len(pipelines)} models together: {mode}, batch {batch_size}", flush=True)
            latencies = measure_latencies(pipelines, settings)
            for label, removed in unit_sets.items():
                rows.append(
                    {
                        "set": label,
                        "mode": mode,
                        "removed_units": removed,
                        **costs[label],
                        "macs_fraction": costs[label]["macs"] / dense_macs,
                        "batch_size": batch_size,
                        "latency": latencies[label],
                    }
                )
            if on_gpu and options["compile"]:
                torch._dynamo.reset()  # each batch size is a new graph; do not keep every compiled UNet alive
    for row in rows:
        baseline = next(
            r for r in rows if r["set"] == "dense" and r["batch_size"] == row["batch_size"] and r["mode"] == row["mode"]
        )
        row["speedup"] = speedups(row["latency"], baseline["latency"], row["macs"], baseline["macs"])

    first = rows[0]["latency"]
    result = {
        "command": "python eval/benchmark_sd15_speedup.py " + " ".join(_given_options(args)),
        "hardware": hardware(args.device),
        "device": args.device,
        "dtype": dtype_name,
        "resolution": args.resolution,
        "latent": args.resolution // VAE_SCALE,
        "steps": args.steps,
        "guidance_scale": args.guidance_scale,
        "rounds": {part: {key: timing[key] for key in ("runs", "warmup")} for part, timing in first.items()},
        "modes": list(modes(args)),
        "torch": torch.__version__,
        "wall_s": round(time.time() - started, 1),
        "load_average": f"{load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end (1-minute)",
        "rows": rows,
    }
    out = Path(args.out or f"eval/results/sd15_speedup_{torch.device(args.device).type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(markdown_table(result))
    if not args.no_results_md:
        write_section(results_key(args.device, dtype_name), results_section(result))
    print(f"\nwrote {out} in {result['wall_s']} s")


RESULTS_KEY = "sd15-speedup"
GPU_RESULTS_KEY = "sd15-speedup-gpu"
GPU_COMMAND = (
    "python eval/benchmark_sd15_speedup.py --device cuda --dtype fp16 --batch-sizes 1,8 --channels-last --compile"
)


def results_key(device: str, dtype_name: str) -> str:
    """CPU runs fill sd15-speedup; GPU runs sd15-speedup-gpu (fp16, what users deploy) or one section per other dtype."""
    if not device.startswith("cuda"):
        return RESULTS_KEY
    return GPU_RESULTS_KEY if dtype_name == "fp16" else f"{GPU_RESULTS_KEY}-{dtype_name}"


WHAT_IS_CUT = (
    "Random-weight UNet with SD-1.5's configuration (block_out_channels 320/640/1280/1280, cross_attention_dim "
    "768, attention_head_dim 8, layers_per_block 2), cut with `diffprune.remove_units`: a BK-SDM-Base-like set "
    "(mid block, second resnet + attention of each down stage, second attention of each cross-attention up "
    "stage; BK-SDM's up-stage resnets take skip concatenations and are not bypassable units) and sets keeping "
    "about 0.8 / 0.7 / 0.6 of the MACs (largest-MACs units first). MACs are counted on each cut model with "
    "`diffprune.structure.costs.count_macs`; *predicted* is dense MACs / cut MACs, *realisation* is measured speedup / "
    "predicted."
)


def results_section(result: dict) -> str:
    """The docs/results.md section: what was cut, how it was measured, the table."""
    on_gpu = result["device"].startswith("cuda")
    return "\n".join(
        [
            "## SD-1.5-shape speedup" + (" on a GPU" if on_gpu else ""),
            "",
            WHAT_IS_CUT,
            "",
            f"Command: `{result['command']}`",
            "",
            f"Hardware: {result['hardware']}, torch {result['torch']}; load average {result.get('load_average', 'not recorded')}. "
            f"Wall time {result['wall_s']:.0f} s. The UNet is timed at the "
            f"batch the pipeline hands it (classifier-free guidance at scale {result.get('guidance_scale')} doubles it).",
            "",
            markdown_table(result),
            "",
            "" if on_gpu else "GPU: see the next section.",
        ]
    ).rstrip()


def gpu_placeholder_section() -> str:
    """The GPU section before anyone has run the benchmark on a GPU: the commands, and no numbers."""
    return "\n".join(
        [
            "## SD-1.5-shape speedup on a GPU",
            "",
            "Unmeasured: no GPU has been lent to a session since the half-precision work, so this section holds no "
            "numbers. `python eval/gpu_check.py` (README, GPU check) runs this benchmark on a CUDA machine: the UNet "
            "at batch 1 and 8 (guidance doubles the UNet's batch) and the 25-step pipeline with classifier-free "
            'guidance, fp16, eager and compiled (`torch.compile(mode="reduce-overhead")`, CUDA graphs), the dense '
            "model and a cut to 0.7 of the MACs timed together in alternating rounds, and replaces this section with "
            "the table. The whole benchmark (every set, channels_last too; `--dtype bf16` writes a section of its "
            "own):",
            "",
            f"    {GPU_COMMAND}",
            "",
            WHAT_IS_CUT,
        ]
    )


def markdown_table(result: dict) -> str:
    result = current_names(result)  # results saved before the denoiser forward was named `denoiser_forward`
    lines = [
        f"{result['hardware']}; {result['device']} {result['dtype']}; {result['resolution']}x{result['resolution']} "
        f"(latent {result['latent']}x{result['latent']}); models timed together in alternating rounds: "
        + "; ".join(
            f"{PART_NAMES[part]} {rounds['runs']} rounds after {rounds['warmup']} warm-up calls"
            for part, rounds in result["rounds"].items()
        )
        + ". Times: median ± IQR; speedups: median of per-round ratios (IQR).",
        "",
        "| set | mode | units removed | params (M) | MACs (G) | MACs kept | batch | UNet batch | UNet ms | UNet speedup "
        "| pipeline ms | pipeline speedup | predicted (MACs) | realisation UNet | realisation pipeline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(latency, part):
        if part not in latency:
            return "–"
        return f"{latency[part]['median_ms']:,.1f} ± {latency[part]['iqr_ms']:,.1f}"

    def number(speedup, key, digits=2):
        value = speedup.get(key)
        return f"{value:.{digits}f}" if value is not None else "–"

    def measured(speedup, part):
        if part == "pipeline" and speedup.get("measurement_problem"):
            return "measurement problem (note)"
        if part not in speedup.get("ratios", {}):
            return "–"
        low, high = speedup["ratios"][part]["iqr"]
        return f"{speedup[part]:.2f} ({low:.2f}-{high:.2f})"

    for row in result["rows"]:
        latency, speedup = row["latency"], row["speedup"]
        unet_batch = latency.get("denoiser_forward", {}).get("denoiser_batch_size", "–")
        lines.append(
            f"| {row['set']} | {row.get('mode', 'eager')} | {len(row['removed_units'])} | {row['params'] / 1e6:.0f} "
            f"| {row['macs'] / 1e9:.0f} | {row['macs_fraction']:.2f} | {row['batch_size']} | {unet_batch} "
            f"| {ms(latency, 'denoiser_forward')} | {measured(speedup, 'denoiser_forward')} | {ms(latency, 'pipeline')} | {measured(speedup, 'pipeline')} "
            f"| {number(speedup, 'predicted_from_macs')} | {number(speedup, 'realisation_ratio_denoiser_forward')} "
            f"| {number(speedup, 'realisation_ratio_pipeline')} |"
        )
    for row in result["rows"]:
        if row["speedup"].get("measurement_problem"):
            lines.append(
                f"\nNote ({row['set']}, {row['mode']}, batch {row['batch_size']}): a measurement problem, "
                f"{row['speedup']['measurement_problem']}."
            )
    return "\n".join(lines)


PART_NAMES = {"denoiser_forward": "UNet forward", "pipeline": "pipeline call"}


def _given_options(args) -> list[str]:
    return [
        f"--{key.replace('_', '-')} {value}" if not isinstance(value, bool) else f"--{key.replace('_', '-')}"
        for key, value in vars(args).items()
        if value is not None and value is not False
    ]


if __name__ == "__main__":
    main()
