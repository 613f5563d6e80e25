"""Every public entry point runs on bf16 models on the CPU: the bug class "the library made a CPU fp32 tensor for
a model that lives elsewhere" shows here without a GPU (tests/test_gpu.py repeats the key paths on CUDA)."""

import pytest
import torch
from tiny_models import sd_unet, tiny_ddpm_pipeline, tiny_sd_pipeline

import diffprune
from diffprune.devices import converted_copy, placement_of, resolve_device, torch_dtype
from diffprune.distributed import use_cpu
from diffprune.errors import DiffpruneError
from diffprune.families import example_inputs
from diffprune.models.adapters import CalibrationSettings
from diffprune.models.components import with_unet
from diffprune.recovery.distillation import DistillSettings
from diffprune.structure.costs import count_macs, count_parameters
from diffprune.structure.gates import gated, removal_values

BF16 = torch.bfloat16
SD_CALIBRATION = dict(num_samples=2, num_inference_steps=1, prompts=["a 1", "a 2"], show_progress=False)
ONE_UNIT = diffprune.Budget(num_units=1)
FEW_CANDIDATES = dict(
    unit_filter=lambda unit: unit.kind in ("mid_block", "resnet"), show_progress=False
)  # one batch of variants


def weights(module) -> dict:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def unchanged(module, before: dict) -> bool:
    after = module.state_dict()
    return all(after[name].dtype == value.dtype and torch.equal(after[name], value) for name, value in before.items())


def test_example_inputs_take_the_models_device_and_dtype():
    inputs = example_inputs(converted_copy(sd_unet(), BF16), 2, text_length=6)
    assert inputs["sample"].dtype == BF16 and inputs["encoder_hidden_states"].dtype == BF16
    assert inputs["timestep"].dtype == torch.long  # integer tensors keep their dtype


def test_units_and_macs_of_a_bf16_unet_equal_the_fp32_ones():
    unet = sd_unet()
    half = converted_copy(unet, BF16)
    assert [(u.name, u.kind, u.params, u.macs) for u in diffprune.find_units(half)] == [
        (u.name, u.kind, u.params, u.macs) for u in diffprune.find_units(unet)
    ]
    assert count_macs(half) == count_macs(unet) > 0
    assert count_macs(half, example_inputs(unet)) == count_macs(unet)  # fp32 inputs are placed on the model


def test_bf16_cut_equals_the_bf16_gated_model():
    unet = converted_copy(sd_unet(), BF16)
    units = diffprune.find_units(unet)
    names = ["mid_block", "down_blocks.0.attentions.1"]
    inputs = example_inputs(unet, 2, text_length=6, generator=torch.Generator().manual_seed(1))
    before = weights(unet)
    with torch.no_grad():
        with gated(unet, units, removal_values(units, names)):
            expected = unet(**inputs).sample
        cut = diffprune.remove_units(unet, names)
        actual = cut(**inputs).sample
    assert placement_of(cut).dtype == BF16 and actual.dtype == BF16
    assert torch.equal(actual, expected)
    assert count_parameters(cut) < count_parameters(unet) and unchanged(unet, before)


def test_prune_a_bf16_pipeline_with_ld_pruner_keeps_bf16_and_leaves_the_input_alone():
    pipeline = tiny_sd_pipeline().to(BF16)
    before = weights(pipeline.unet)
    result = diffprune.prune(
        pipeline, "ld-pruner", ONE_UNIT, calibration=CalibrationSettings(**SD_CALIBRATION), **FEW_CANDIDATES
    )
    assert len(result.removed) == 1 and all(torch.isfinite(torch.tensor(list(result.scores.values()))))
    assert placement_of(result.pipeline.unet).dtype == BF16
    assert result.report["settings"]["scoring_dtype"] == "bfloat16"
    assert unchanged(pipeline.unet, before)


def test_prune_scores_in_the_requested_dtype_and_cuts_from_the_inputs_own_weights():
    pipeline = tiny_sd_pipeline()
    before = weights(pipeline.unet)
    result = diffprune.prune(
        pipeline,
        "ld-pruner",
        ONE_UNIT,
        dtype="bf16",
        calibration=CalibrationSettings(**SD_CALIBRATION),
        **FEW_CANDIDATES,
    )
    assert result.report["settings"]["scoring_dtype"] == "bfloat16"
    assert placement_of(result.pipeline.unet).dtype == torch.float32, "the cut keeps the input's precision"
    assert unchanged(pipeline.unet, before) and placement_of(pipeline.text_encoder).dtype == torch.float32
    kept = {key: value for key, value in result.pipeline.unet.state_dict().items()}
    assert all(torch.equal(kept[key], before[key]) for key in kept), "cut weights are the input's fp32 weights"


def test_prune_a_bf16_pipeline_with_a_loss_based_criterion():
    pipeline = tiny_ddpm_pipeline().to(BF16)
    calibration = CalibrationSettings(num_samples=2, num_inference_steps=1, show_progress=False)
    result = diffprune.prune(
        pipeline,
        diffprune.criteria.OutputLoss(num_batches=1, batch_size=2),
        ONE_UNIT,
        calibration=calibration,
        **FEW_CANDIDATES,
    )
    assert len(result.removed) == 1 and placement_of(result.pipeline.unet).dtype == BF16


def test_distill_a_bf16_pipeline_trains_and_returns_bf16():
    teacher = tiny_ddpm_pipeline().to(BF16)
    student = with_unet(teacher, diffprune.remove_units(teacher.unet, ["mid_block"]))
    before = weights(student.unet)
    calibration = CalibrationSettings(num_samples=2, num_inference_steps=1, show_progress=False)
    distilled, history = diffprune.distill(
        student, teacher, DistillSettings(steps=2, batch_size=2), calibration, show_progress=False
    )
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(entry["loss"])) for entry in history)
    assert placement_of(distilled.unet).dtype == BF16 and unchanged(student.unet, before)
    assert not unchanged(distilled.unet, before), "the fp32 master weights trained and came back in bf16"


def test_distill_text_to_image_in_bf16_autocast_from_fp32_pipelines():
    teacher = tiny_sd_pipeline()
    student = with_unet(teacher, diffprune.remove_units(teacher.unet, ["down_blocks.0.attentions.1"]))
    distilled, history = diffprune.distill(
        student,
        teacher,
        DistillSettings(steps=1, batch_size=2, ema_decay=None),
        CalibrationSettings(**SD_CALIBRATION),
        show_progress=False,
        dtype="bf16",
    )
    assert placement_of(distilled.unet).dtype == BF16
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in history)


def test_evaluate_a_bf16_pipeline_with_latency_and_macs():
    pipeline = tiny_sd_pipeline().to(BF16)
    report = diffprune.evaluate(
        pipeline,
        metrics="latency,macs",
        num_samples=2,
        device="cpu",
        show_progress=False,
        latency={"runs": 2, "warmup": 0, "num_inference_steps": 1},
    )
    results = report["results"]
    assert results["macs"] == count_macs(tiny_sd_pipeline().unet, example_inputs(pipeline.unet, text_length=12))
    assert results["latency"]["denoiser_forward"]["dtype"] == "bfloat16"
    assert results["latency"]["denoiser_forward"]["denoiser_batch_size"] == 2, "guidance doubles the UNet's batch"
    assert results["latency"]["pipeline"]["median_ms"] > 0


def test_device_and_dtype_policy_errors_name_the_flags():
    with pytest.raises(DiffpruneError, match="fp16 needs a GPU"):
        torch_dtype("fp16", "cpu")
    with pytest.raises(DiffpruneError, match="unknown `dtype`"):
        torch_dtype("fp8", "cpu")
    with pytest.raises(DiffpruneError, match="not a device"):
        resolve_device("gpu0")
    assert resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert use_cpu("cpu"), "a CPU device asks accelerate for CPU processes even where a GPU is visible"
    if not torch.cuda.is_available():
        with pytest.raises(DiffpruneError, match="`device` cpu"):
            resolve_device("cuda")


def test_fp16_distillation_on_a_cpu_is_refused():
    teacher = tiny_ddpm_pipeline()
    student = with_unet(teacher, diffprune.remove_units(teacher.unet, ["mid_block"]))
    with pytest.raises(DiffpruneError, match="fp16 training needs a GPU"):
        diffprune.distill(
            student,
            teacher,
            DistillSettings(steps=1, mixed_precision="fp16"),
            CalibrationSettings(num_samples=2, num_inference_steps=1),
            show_progress=False,
        )


def test_a_bf16_unconditional_pipeline_generates_images():
    """diffusers' DDPM pipeline turns its last sample into numpy, which has no bfloat16 (generation.py)."""
    pipeline = tiny_ddpm_pipeline().to(BF16)
    batch = diffprune.generate(pipeline, seeds=2, num_inference_steps=2, show_progress=False)
    assert len(batch.images) == 2 and "step" not in pipeline.scheduler.__dict__
