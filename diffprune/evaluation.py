"""Evaluation: the same prompts and seeds through every model, then quality, cost and speed side by side.

`evaluate` measures one model (optionally against a reference); `compare_and_report` measures several and
writes a grid, an HTML report and JSON. Both run `run_evaluation`, so a number in a report always means the
same thing: FID of a model's samples against the reference's samples for the same prompts and seeds (and
against real data when given), CLIP / CLAP score against the prompts, UNet MACs and parameters, and measured
latency with the speedup that the MACs predicted next to the one that was realised.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .costs import count_macs, count_parameters, pipeline_cost_inputs
from .devices import resolve_device, torch_dtype
from .errors import DiffpruneError
from .generation import (
    AUDIO_DIFFUSION,
    DEFAULT_STEPS,
    TEXT_TO_AUDIO,
    TEXT_TO_IMAGE,
    UNCONDITIONAL_IMAGE,
    GeneratedBatch,
    generate,
    images_to_uint8,
    pipeline_family,
    sample_plan,
    takes_prompts,
)
from .latency import LatencySettings, measure_pipeline_latency, speedups
from .prompts import default_prompts

METRICS = ("fid", "clip", "clap", "latency", "macs")
QUALITY_METRICS = {
    TEXT_TO_IMAGE: ("fid", "clip"),
    UNCONDITIONAL_IMAGE: ("fid",),
    AUDIO_DIFFUSION: ("fid",),  # on the mel images the pipeline produces
    TEXT_TO_AUDIO: ("fid", "clap"),  # FID on mel images rendered from the audio
}
SUMMARY_COLUMNS = [
    "model",
    "params",
    "macs",
    "latency_ms",
    "unet_latency_ms",
    "speedup",
    "predicted_speedup",
    "fid_vs_reference",
    "fid_vs_real_images",
    "clip_score",
    "clap_score",
]


def parse_metrics(metrics) -> tuple[str, ...] | None:
    """'fid,clip' or an iterable of names -> a validated tuple; None stays None (the family's defaults)."""
    if metrics is None:
        return None
    names = [name.strip().lower() for name in (metrics.split(",") if isinstance(metrics, str) else metrics)]
    names = [name for name in names if name]
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise DiffpruneError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    if not names:
        raise DiffpruneError(f"no metrics given; choose from {', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))


@dataclass
class EvaluationSettings:
    """Everything that decides the numbers; validated on construction so mistakes surface before any work."""

    metrics: tuple[str, ...] | str | None = None  # None: the family's quality metrics plus latency and macs
    num_samples: int = 16
    seed: int = 0
    prompts: list[str] | None = None  # text families; None: bundled digits prompts or a generic list
    num_inference_steps: int = DEFAULT_STEPS
    guidance_scale: float | None = None  # None: each pipeline's own default
    generation_batch_size: int = 8
    real_images: str | None = None  # folder of real samples for FID against data
    fid_features: object = None  # "inception", a bundled feature network, a folder or a module; None: by model
    fid_weights: str | None = None  # InceptionV3 weights file for machines without internet
    clip_model: str | None = None  # hub id, folder or bundled name; None: digits-clip for digits-t2i, else openai
    clap_model: str | None = None  # hub id or folder; None: laion/clap-htsat-unfused
    device: str | None = None  # None: cuda when a GPU is visible, else cpu (devices.resolve_device)
    dtype: str | None = None  # fp32, fp16 (GPU), bf16; None keeps the pipelines' dtype
    latency: LatencySettings | dict | None = None  # None: defaults, timing calls with num_inference_steps
    max_grid_rows: int = 16  # compare: rows shown in the grid (all samples count for the metrics)
    show_progress: bool = True

    def __post_init__(self):
        from .real_images import check_real_images_folder

        self.metrics = parse_metrics(self.metrics)
        if self.latency is None:
            self.latency = LatencySettings(num_inference_steps=self.num_inference_steps)
        elif isinstance(self.latency, dict):
            self.latency = LatencySettings(**{"num_inference_steps": self.num_inference_steps, **self.latency})
        if self.num_samples < 1:
            raise DiffpruneError("--num-samples must be at least 1")
        if self.metrics and "fid" in self.metrics and self.num_samples < 2:
            raise DiffpruneError("FID needs at least 2 samples per model; raise --num-samples")
        if self.real_images is not None:
            self.real_images = str(check_real_images_folder(self.real_images))
        if self.fid_weights is not None and not Path(self.fid_weights).is_file():
            raise DiffpruneError(f"--fid-weights {self.fid_weights} is not a file; pass the InceptionV3 weights file")
        self.device = resolve_device(self.device)
        torch_dtype(self.dtype, self.device)
        if self.generation_batch_size < 1:
            raise DiffpruneError("--batch-size must be at least 1")

    def as_dict(self) -> dict:
        settings = asdict(self)
        if isinstance(self.fid_features, torch.nn.Module):
            settings["fid_features"] = type(self.fid_features).__name__
        return settings


@dataclass
class EvaluationRun:
    """What run_evaluation measured: one row per model, and the samples behind the quality numbers."""

    family: str
    metrics: tuple[str, ...]
    reference: str | None
    seeds: list[int]
    prompts: list[str] | None
    rows: dict[str, dict]
    generated: dict[str, GeneratedBatch]
    scorers: dict[str, str]  # metric -> which network scored it


def bundled_name_of(model) -> str | None:
    """The bundled short name a path, name or loaded pipeline comes from, if any (picks default metrics)."""
    from . import zoo

    if isinstance(model, str) and zoo.is_bundled(model):
        return model
    location = model if isinstance(model, (str, Path)) else getattr(model, "name_or_path", None)
    if not location:
        return None
    try:
        resolved = Path(location).expanduser().resolve()
    except (OSError, RuntimeError):
        return None
    for name in zoo.list_bundled():
        if resolved == (zoo.models_dir() / zoo.BUNDLED[name]).resolve():
            return name
    return None


def label_of(model) -> str:
    if isinstance(model, (str, Path)):
        return str(model)
    location = getattr(model, "name_or_path", None)
    return bundled_name_of(model) or (Path(location).name if location else type(model).__name__)


def load_models(models: dict) -> dict:
    """{label: pipeline} from {label: pipeline, path, hub id or bundled name}."""
    from .loading import check_has_unet, load_pipeline

    loaded = {}
    for label, model in models.items():
        pipeline = load_pipeline(str(model)) if isinstance(model, (str, Path)) else model
        check_has_unet(pipeline)
        loaded[label] = pipeline
    return loaded


def metrics_for(family: str, requested, has_comparison: bool) -> tuple[str, ...]:
    """The requested metrics after checking they apply; None picks the family's defaults."""
    if requested is None:
        quality = [m for m in QUALITY_METRICS[family] if m != "fid" or has_comparison]
        return tuple(quality) + ("latency", "macs")
    for metric in requested:
        if metric in ("fid", "clip", "clap") and metric not in QUALITY_METRICS[family]:
            hint = {"clip": "it needs a text-to-image pipeline", "clap": "it needs a text-to-audio pipeline"}[metric]
            raise DiffpruneError(f"metric {metric!r} does not apply to {family} models: {hint}")
    if "fid" in requested and not has_comparison:
        raise DiffpruneError("FID compares two sample sets: pass --reference MODEL or --real-images FOLDER")
    return requested


def common_family(pipelines: dict) -> str:
    families = {label: pipeline_family(pipeline) for label, pipeline in pipelines.items()}
    if len(set(families.values())) > 1:
        listed = ", ".join(f"{label} is {family}" for label, family in families.items())
        raise DiffpruneError(f"models of different families cannot share prompts and seeds ({listed})")
    return next(iter(families.values()))


def unet_costs(unet, pipeline=None) -> dict:
    """Params and MACs of one forward as the pipeline makes it (same numbers as `diffprune prune` reports)."""
    inputs = pipeline_cost_inputs(pipeline) if pipeline is not None else None
    return {"params": count_parameters(unet), "macs": count_macs(unet, inputs)}


def run_evaluation(
    pipelines: dict, reference: str | None, settings: EvaluationSettings, keep_samples: bool = False
) -> EvaluationRun:
    """Measure every pipeline in {label: pipeline} with the same prompts and seeds; `reference` is one label."""
    if reference is not None and reference not in pipelines:
        raise DiffpruneError(f"reference {reference!r} is not among the models ({', '.join(pipelines)})")
    family = common_family(pipelines)
    has_comparison = (reference is not None and len(pipelines) > 1) or settings.real_images is not None
    metrics = metrics_for(family, settings.metrics, has_comparison)
    names = [bundled_name_of(pipeline) for pipeline in pipelines.values()]
    reference_name = bundled_name_of(pipelines[reference]) if reference else None
    first = next(iter(pipelines.values()))
    prompts = None
    if takes_prompts(first):
        prompts = settings.prompts or default_prompts(first, reference_name or next((n for n in names if n), None))
    seeds, sample_prompts = sample_plan(settings.num_samples, settings.seed, prompts)
    dtype = torch_dtype(settings.dtype, settings.device)
    for pipeline in pipelines.values():  # in place, as diffusers' own .to(): callers' pipelines move too
        if dtype is None:
            pipeline.to(settings.device)
        else:
            pipeline.to(settings.device, dtype)
        pipeline.set_progress_bar_config(disable=True)

    needs_samples = keep_samples or any(metric in metrics for metric in ("fid", "clip", "clap"))
    rows = {label: {} for label in pipelines}
    generated = {}
    progress = tqdm(pipelines.items(), desc="evaluating models", unit="model", disable=not settings.show_progress)
    for label, pipeline in progress:
        progress.set_postfix_str(label[-40:])
        if "macs" in metrics or "latency" in metrics:
            rows[label].update(unet_costs(pipeline.unet, pipeline))
        if "latency" in metrics:
            rows[label]["latency"] = measure_pipeline_latency(
                pipeline, settings.latency, prompts[0] if prompts else None
            )
        if needs_samples:
            generated[label] = generate(
                pipeline,
                prompts=sample_prompts,
                seeds=seeds,
                num_inference_steps=settings.num_inference_steps,
                guidance_scale=settings.guidance_scale,
                batch_size=settings.generation_batch_size,
                show_progress=settings.show_progress,
                description=f"generating ({label[-30:]})",
            )
    if reference is not None and "latency" in metrics:
        for label, row in rows.items():
            if label != reference:
                row["speedup"] = speedups(
                    row["latency"], rows[reference]["latency"], row["macs"], rows[reference]["macs"]
                )
    scorers = _score_quality(
        metrics, rows, generated, reference, sample_prompts, settings, names, reference_name, first
    )
    return EvaluationRun(family, metrics, reference, seeds, sample_prompts, rows, generated, scorers)


def _score_quality(metrics, rows, generated, reference, prompts, settings, names, reference_name, first) -> dict:
    scorers = {}
    if "fid" in metrics:
        from .metrics.fid import FrechetDistance, default_feature_network
        from .real_images import load_real_images

        features = settings.fid_features or default_feature_network(reference_name, *names)
        scorer = FrechetDistance(features, settings.fid_weights, settings.device)
        scorers["fid"] = scorer.description
        images = {label: images_to_uint8(batch.images) for label, batch in generated.items()}
        real = None
        if settings.real_images is not None:
            like = next(iter(generated.values())).images[0]
            real = images_to_uint8(load_real_images(settings.real_images, like=like, pipeline=first))
        for label, row in tqdm(rows.items(), desc="FID", disable=not settings.show_progress, leave=False):
            row["fid"] = {}
            if reference is not None and label != reference:
                row["fid"]["vs_reference"] = scorer(images[reference], images[label])
            if real is not None:
                row["fid"]["vs_real_images"] = scorer(real, images[label])
                row["fid"]["real_images"] = len(real)
    if "clip" in metrics:
        from .metrics.clip_score import ClipScorer, default_clip_model

        scorer = ClipScorer(settings.clip_model or default_clip_model(reference_name, *names), device=settings.device)
        scorers["clip"] = scorer.description
        for label, row in rows.items():
            row["clip_score"] = scorer(images_to_uint8(generated[label].images), prompts)
    if "clap" in metrics:
        from .metrics.clap_score import DEFAULT_CLAP_MODEL, ClapScorer

        scorer = ClapScorer(settings.clap_model or DEFAULT_CLAP_MODEL, device=settings.device)
        scorers["clap"] = scorer.description
        for label, row in rows.items():
            batch = generated[label]
            row["clap_score"] = scorer(batch.audios, batch.sample_rate, prompts)
    return scorers


def evaluate(
    pipeline_or_path,
    reference=None,
    metrics=None,
    num_samples: int = 16,
    out: str | Path | None = None,
    **settings,
) -> dict:
    """Evaluate one pipeline (object, folder, hub id or bundled name), optionally against a reference.

    `settings` are EvaluationSettings fields (seed, prompts, num_inference_steps, real_images, fid_features,
    fid_weights, clip_model, device, dtype, latency=LatencySettings(...) or a dict of its fields, ...).
    Pipelines given as objects are moved to `device` / `dtype` in place. Returns the report; writes it as JSON
    to `out` if given.
    """
    config = EvaluationSettings(metrics=metrics, num_samples=num_samples, **settings)
    label = label_of(pipeline_or_path)
    models = {label: pipeline_or_path}
    reference_label = None
    if reference is not None:
        reference_label = label_of(reference)
        if reference_label == label:
            reference_label = f"{label} (reference)"
        models[reference_label] = reference
    if out is not None and Path(out).is_dir():
        raise DiffpruneError(f"--out {out} is a folder; pass a file name like report.json")
    run = run_evaluation(load_models(models), reference_label, config)
    report = {
        "model": label,
        **report_header(run, config),
        "results": run.rows[label],
        "reference_results": run.rows.get(reference_label) if reference_label else None,
    }
    from .distributed import is_main_process

    if out is not None and is_main_process():  # under accelerate, one process writes
        from .outputs import check_writable_parent, write_json_atomically

        check_writable_parent(Path(out))
        write_json_atomically(out, report)
    return report


def report_header(run: EvaluationRun, config: EvaluationSettings) -> dict:
    """What every report states about how its numbers were made."""
    return {
        "reference": run.reference,
        "family": run.family,
        "metrics": list(run.metrics),
        "scored_with": run.scorers,
        "seeds": run.seeds,
        "prompts": run.prompts,
        "settings": config.as_dict(),
    }


def summary_row(label: str, row: dict) -> dict:
    """One flat table row (SUMMARY_COLUMNS) from a model's nested results."""
    latency = row.get("latency", {})
    speedup = row.get("speedup", {})
    fid = row.get("fid", {})
    return {
        "model": label,
        "params": row.get("params"),
        "macs": row.get("macs"),
        "latency_ms": latency.get("pipeline", {}).get("median_ms"),
        "unet_latency_ms": latency.get("unet_forward", {}).get("median_ms"),
        "speedup": speedup.get("pipeline", speedup.get("unet_forward")),
        "predicted_speedup": speedup.get("predicted_from_macs"),
        "fid_vs_reference": fid.get("vs_reference"),
        "fid_vs_real_images": fid.get("vs_real_images"),
        "clip_score": row.get("clip_score"),
        "clap_score": row.get("clap_score"),
    }


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A plain-text table of summary rows; columns with no value in any row are left out."""
    from .html_report import format_value

    columns = columns or [c for c in SUMMARY_COLUMNS if any(row.get(c) is not None for row in rows)]
    cells = [[format_value(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def slug(label: str) -> str:
    """A file-name-safe version of a model label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.") or "model"


def compare_and_report(
    models: dict,
    reference_label: str | None,
    out_folder: str | Path,
    prompts: list[str] | None = None,
    num_samples: int | None = None,
    metrics=("macs", "latency"),
    **settings,
) -> dict:
    """Run every model in {label: pipeline or path} on the same prompts and seeds; write grid.png, samples/,
    audio/ (audio families), report.html and report.json into `out_folder` (which must be new or empty).

    num_samples None: one sample per prompt (text families) or 8 seeds. Returns {"columns", "rows" (one
    flat dict per model), "table" (printable text), "files", "report" (what report.json holds)}.
    """
    from .outputs import check_new_output, staged_output

    out_folder = check_new_output(out_folder)
    if reference_label is not None and reference_label not in models:
        raise DiffpruneError(f"reference {reference_label!r} is not among the models ({', '.join(models)})")
    num_samples = num_samples or (len(prompts) if prompts else 8)
    config = EvaluationSettings(metrics=metrics, num_samples=num_samples, prompts=prompts, **settings)
    run = run_evaluation(load_models(models), reference_label, config, keep_samples=True)
    rows = [summary_row(label, row) for label, row in run.rows.items()]
    columns = [c for c in SUMMARY_COLUMNS if any(row.get(c) is not None for row in rows)]
    report = {**report_header(run, config), "models": run.rows, "summary": rows}
    from .distributed import is_main_process

    if is_main_process():  # under accelerate, one process writes
        with staged_output(out_folder) as staging:
            files = _write_comparison(staging, run, rows, columns, report, config)
    else:
        files = {}
    return {
        "columns": columns,
        "rows": rows,
        "table": format_table(rows, columns),
        "files": {name: str(out_folder / relative) for name, relative in files.items()},
        "report": report,
    }


def _write_comparison(folder: Path, run: EvaluationRun, rows, columns, report, config) -> dict:
    from .grids import draw_comparison_grid
    from .html_report import render_report, wav_bytes, wav_data_uri
    from .outputs import write_json_atomically

    shown = min(len(run.seeds), config.max_grid_rows)
    row_labels = [
        f"{run.prompts[i]} (seed {run.seeds[i]})" if run.prompts else f"seed {run.seeds[i]}" for i in range(shown)
    ]
    columns_for_grid = []
    audio_uris = {}
    for summary in rows:
        label = summary["model"]
        batch = run.generated[label]
        header = [label, _params_text(summary["params"]), _latency_text(summary)]
        columns_for_grid.append((header, batch.images[:shown]))
        sample_folder = folder / "samples" / slug(label)
        sample_folder.mkdir(parents=True, exist_ok=True)
        for seed, image in zip(run.seeds, batch.images, strict=True):
            image.save(sample_folder / f"seed-{seed}.png")
        if batch.audios is not None:
            audio_folder = folder / "audio" / slug(label)
            audio_folder.mkdir(parents=True, exist_ok=True)
            for seed, audio in zip(run.seeds, batch.audios, strict=True):
                (audio_folder / f"seed-{seed}.wav").write_bytes(wav_bytes(audio, batch.sample_rate))
            audio_uris[label] = [wav_data_uri(audio, batch.sample_rate) for audio in batch.audios[:shown]]
    grid = draw_comparison_grid(columns_for_grid, row_labels)
    grid.save(folder / "grid.png")
    audio = (list(audio_uris), row_labels, audio_uris) if audio_uris else None
    title = "diffprune comparison" + (f" against {run.reference}" if run.reference else "")
    page = render_report(title, columns, rows, grid, report["settings"] | {"scored_with": run.scorers}, audio)
    (folder / "report.html").write_text(page, encoding="utf-8")
    write_json_atomically(folder / "report.json", report)
    files = {"grid": "grid.png", "html": "report.html", "json": "report.json", "samples": "samples"}
    if audio_uris:
        files["audio"] = "audio"
    return files


def _params_text(params) -> str:
    return f"{params / 1e6:.2f}M params" if params is not None else "params not counted"


def _latency_text(summary: dict) -> str:
    if summary["latency_ms"] is not None:
        return f"{summary['latency_ms']:.0f} ms / call"
    if summary["unet_latency_ms"] is not None:
        return f"{summary['unet_latency_ms']:.1f} ms / UNet"
    return "latency not measured"
