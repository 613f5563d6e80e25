"""Evaluation: the same prompts and seeds through every model, then quality, cost and speed side by side.

`evaluate` measures one model (optionally against a reference); `compare_and_report` measures several and
writes a grid, an HTML report and JSON. Both run `run_evaluation`, so a number in a report always means the
same thing: FID of a model's samples against the reference's samples for the same prompts and seeds (and
against real data when given), CLIP / CLAP score against the prompts, the denoiser's MACs and parameters, and measured
latency with the speedup that the MACs predicted next to the one that was realised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from diffprune.devices import torch_dtype
from diffprune.distributed import is_main_process
from diffprune.errors import DiffpruneError
from diffprune.evaluation.latency import measure_latencies, speedups
from diffprune.evaluation.metrics.clap_score import DEFAULT_CLAP_MODEL, ClapScorer
from diffprune.evaluation.metrics.clip_score import ClipScorer, default_clip_model
from diffprune.evaluation.metrics.fid import FrechetDistance, default_feature_network
from diffprune.evaluation.settings import EvaluationSettings, metrics_for
from diffprune.evaluation.tables import report_header
from diffprune.models import zoo
from diffprune.models.components import pipeline_in_dtype
from diffprune.models.generation import (
    GeneratedBatch,
    generate,
    images_to_uint8,
    pipeline_family,
    sample_plan,
    takes_prompts,
)
from diffprune.models.loading import check_has_denoiser, load_pipeline
from diffprune.models.prompts import default_prompts
from diffprune.models.real_images import load_real_images
from diffprune.module_state import pipeline_modules, preserved
from diffprune.outputs import check_writable_parent, write_json_atomically
from diffprune.structure.costs import count_macs, count_parameters, pipeline_cost_inputs
from diffprune.structure.denoiser import denoiser_of


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
    loaded = {}
    for label, model in models.items():
        pipeline = load_pipeline(str(model)) if isinstance(model, (str, Path)) else model
        check_has_denoiser(pipeline)
        loaded[label] = pipeline
    return loaded


def common_family(pipelines: dict) -> str:
    families = {label: pipeline_family(pipeline) for label, pipeline in pipelines.items()}
    if len(set(families.values())) > 1:
        listed = ", ".join(f"{label} is {family}" for label, family in families.items())
        raise DiffpruneError(f"models of different families cannot share prompts and seeds ({listed})")
    return next(iter(families.values()))


def denoiser_costs(denoiser, pipeline=None) -> dict:
    """Params and MACs of one forward as the pipeline makes it (same numbers as `diffprune prune` reports)."""
    inputs = pipeline_cost_inputs(pipeline) if pipeline is not None else None
    return {"params": count_parameters(denoiser), "macs": count_macs(denoiser, inputs)}


def run_evaluation(
    pipelines: dict, reference: str | None, settings: EvaluationSettings, keep_samples: bool = False
) -> EvaluationRun:
    """Measure every pipeline in {label: pipeline} with the same prompts and seeds; `reference` is one label.

    The pipelines run on `settings.device` in `settings.dtype` (another dtype runs on a converted copy); the
    callers' pipelines are left as they were (device, dtype, modes, flags)."""
    with preserved(*pipeline_modules(*pipelines.values())):
        dtype = torch_dtype(settings.dtype, settings.device)
        placed = {
            label: pipeline_in_dtype(pipeline, dtype).to(settings.device) for label, pipeline in pipelines.items()
        }
        return _run_evaluation(placed, reference, settings, keep_samples)


def _run_evaluation(pipelines, reference, settings, keep_samples) -> EvaluationRun:
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
    for pipeline in pipelines.values():
        pipeline.set_progress_bar_config(disable=True)

    needs_samples = keep_samples or any(metric in metrics for metric in ("fid", "clip", "clap"))
    rows = {label: {} for label in pipelines}
    generated = {}
    if "macs" in metrics or "latency" in metrics:
        for label, pipeline in pipelines.items():
            rows[label].update(denoiser_costs(denoiser_of(pipeline), pipeline))
    if "latency" in metrics:  # all models together, in alternating rounds, so their times compare
        latencies = measure_latencies(pipelines, settings.latency, prompts[0] if prompts else None)
        for label, latency in latencies.items():
            rows[label]["latency"] = latency
    progress = tqdm(pipelines.items(), desc="evaluating models", unit="model", disable=not settings.show_progress)
    for label, pipeline in progress:
        progress.set_postfix_str(label[-40:])
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
        scorer = ClipScorer(settings.clip_model or default_clip_model(reference_name, *names), device=settings.device)
        scorers["clip"] = scorer.description
        for label, row in rows.items():
            row["clip_score"] = scorer(images_to_uint8(generated[label].images), prompts)
    if "clap" in metrics:
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
    Pipelines given as objects are left as they were. Returns the report; writes it as JSON to `out` if given.
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
        raise DiffpruneError(f"`out` {out} is a folder; pass a file name like report.json")
    run = run_evaluation(load_models(models), reference_label, config)
    report = {
        "model": label,
        **report_header(run, config),
        "results": run.rows[label],
        "reference_results": run.rows.get(reference_label) if reference_label else None,
    }

    if out is not None and is_main_process():  # under accelerate, one process writes
        check_writable_parent(Path(out))
        write_json_atomically(out, report)
    return report
