"""Options shared by `diffprune eval` and `diffprune compare` (the quality flags also by the recipes in
pipelines/), so each flag means the same thing everywhere."""

from __future__ import annotations

from diffprune.cli.device_options import add_device_options, device_and_dtype_from_args
from diffprune.evaluation.metrics.clip_score import DEFAULT_CLIP_MODEL
from diffprune.models import zoo


def add_evaluation_options(parser, default_num_samples) -> None:
    samples = parser.add_argument_group("samples")
    samples.add_argument(
        "--prompts", help="text file, one prompt per line (text-to-image/audio; default: bundled or generic)"
    )
    samples.add_argument(
        "--num-samples",
        type=int,
        default=default_num_samples,
        help="samples per model, all with the same seeds and prompts (default: %(default)s)",
    )
    samples.add_argument("--seed", type=int, default=0, help="first seed; sample i uses seed+i (default: 0)")
    samples.add_argument("--inference-steps", type=int, default=25, help="denoising steps per sample (default: 25)")
    samples.add_argument("--guidance-scale", type=float, help="classifier-free guidance (default: the pipeline's)")
    samples.add_argument("--batch-size", type=int, default=8, help="samples per pipeline call while generating")

    add_quality_options(parser)

    speed = parser.add_argument_group("latency")
    add_device_options(speed, dtype_help="run every model in this precision (default: as stored)")
    speed.add_argument("--latency-batch-size", type=int, default=1, help="batch size of the timed calls (default: 1)")
    speed.add_argument(
        "--latency-runs",
        type=int,
        help="timed rounds, each timing every model once, in alternating order (default: per device, more for the "
        "denoiser forward than for whole calls; README, Devices and precision)",
    )
    speed.add_argument(
        "--latency-warmup",
        type=int,
        help="untimed warm-up calls per model before the rounds (default: per device and part, likewise)",
    )
    speed.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the UNet before timing (on CUDA: mode reduce-overhead, i.e. CUDA graphs)",
    )
    speed.add_argument("--channels-last", action="store_true", help="time the UNet in channels_last memory format")
    speed.add_argument("--no-pipeline-latency", action="store_true", help="time only the UNet forward, not whole calls")


def add_quality_options(parser) -> None:
    """The networks and data the quality metrics use (FID, CLIP, CLAP): the same flags wherever models are compared."""
    models_of_clip = {}
    for model, clip in zoo.CLIP_MODELS.items():
        models_of_clip.setdefault(clip, []).append(model)
    bundled_clip = ", ".join(f"{clip} for {' and '.join(models)}" for clip, models in models_of_clip.items())
    quality = parser.add_argument_group("quality metrics")
    quality.add_argument("--real-images", help="folder of real images (or WAV files for audio) for FID against data")
    quality.add_argument(
        "--fid-features",
        help=f"FID feature network: inception, {', '.join(zoo.feature_networks())} or a "
        "FeatureClassifier folder (default: the bundled one matching a bundled model, else inception)",
    )
    quality.add_argument(
        "--fid-weights", help="InceptionV3 weights file (pt_inception-2015-12-05) for machines without internet"
    )
    quality.add_argument(
        "--clip-model",
        help=f"CLIP hub id or folder (default: {bundled_clip}, else {DEFAULT_CLIP_MODEL})",
    )
    quality.add_argument(
        "--clap-model", help="CLAP hub id or folder for text-to-audio (default: laion/clap-htsat-unfused)"
    )


def quality_settings_from_args(args) -> dict:
    """Keyword arguments for EvaluationSettings from add_quality_options' flags."""
    return {
        "real_images": args.real_images,
        "fid_features": args.fid_features,
        "fid_weights": args.fid_weights,
        "clip_model": args.clip_model,
        "clap_model": args.clap_model,
    }


def settings_from_args(args) -> dict:
    """Keyword arguments for EvaluationSettings (metrics, num_samples and prompts are up to each command)."""
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.evaluation.latency import LatencySettings

    device, _ = device_and_dtype_from_args(args)
    return {
        "seed": args.seed,
        "num_inference_steps": args.inference_steps,
        "guidance_scale": args.guidance_scale,
        "generation_batch_size": args.batch_size,
        **quality_settings_from_args(args),
        "device": device,
        "dtype": args.dtype,
        "latency": LatencySettings(
            batch_size=args.latency_batch_size,
            runs=args.latency_runs,
            warmup=args.latency_warmup,
            num_inference_steps=args.inference_steps,
            guidance_scale=args.guidance_scale,
            compile=args.compile,
            channels_last=args.channels_last,
            measure_pipeline=not args.no_pipeline_latency,
        ),
    }


def read_prompts_option(args):
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.models.prompts import read_prompts

    return read_prompts(args.prompts) if args.prompts else None
