"""The entry points on a CUDA GPU in fp16 (marked `gpu`: skipped where torch sees no GPU). The same paths run
in bf16 on the CPU in tests/test_half_precision.py, so CI without a GPU still guards the bug class."""

import pytest
import torch
from tiny_models import sd_unet, tiny_ddpm_pipeline, tiny_sd_pipeline

import diffprune
from diffprune.devices import placement_of
from diffprune.families import example_inputs
from diffprune.models.adapters import CalibrationSettings
from diffprune.models.components import with_unet
from diffprune.recovery.distillation import DistillSettings
from diffprune.structure.costs import count_macs
from diffprune.structure.gates import gated, removal_values

pytestmark = pytest.mark.gpu
FP16 = torch.float16


def test_units_macs_and_cut_of_a_cuda_fp16_unet():
    unet = sd_unet()
    cuda = sd_unet().to("cuda", FP16)
    assert [u.name for u in diffprune.find_units(cuda)] == [u.name for u in diffprune.find_units(unet)]
    assert count_macs(cuda) == count_macs(unet)
    units = diffprune.find_units(cuda)
    inputs = example_inputs(cuda, 2, text_length=6)
    assert inputs["sample"].is_cuda and inputs["timestep"].is_cuda
    with torch.no_grad():
        with gated(cuda, units, removal_values(units, ["mid_block"])):
            expected = cuda(**inputs).sample
        cut = diffprune.remove_units(cuda, ["mid_block"])
        assert placement_of(cut) == placement_of(cuda)
        torch.testing.assert_close(cut(**inputs).sample, expected)


def test_prune_a_cuda_fp16_pipeline():
    pipeline = tiny_sd_pipeline().to("cuda", FP16)
    calibration = CalibrationSettings(num_samples=2, num_inference_steps=2, prompts=["a 1", "a 2"], show_progress=False)
    result = diffprune.prune(
        pipeline, "ld-pruner", diffprune.Budget(num_units=2), calibration=calibration, show_progress=False
    )
    assert placement_of(result.pipeline.unet).device.type == "cuda"
    assert placement_of(result.pipeline.unet).dtype == FP16


def test_prune_on_cuda_with_a_loss_based_criterion_in_bf16_scoring():
    pipeline = tiny_ddpm_pipeline().to("cuda")
    calibration = CalibrationSettings(num_samples=2, num_inference_steps=2, show_progress=False)
    result = diffprune.prune(
        pipeline,
        diffprune.criteria.Taylor(num_batches=1, batch_size=2),
        diffprune.Budget(num_units=2),
        calibration=calibration,
        show_progress=False,
        dtype="bf16",
    )
    assert placement_of(result.pipeline.unet).dtype == torch.float32


def test_distill_a_cuda_fp16_pipeline_with_ema():
    teacher = tiny_ddpm_pipeline().to("cuda", FP16)
    student = with_unet(teacher, diffprune.remove_units(teacher.unet, ["mid_block"]))
    calibration = CalibrationSettings(num_samples=4, num_inference_steps=2, show_progress=False)
    distilled, history = diffprune.distill(
        student, teacher, DistillSettings(steps=3, batch_size=2), calibration, show_progress=False
    )
    assert placement_of(distilled.unet) == placement_of(student.unet)
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in history)


def test_distill_on_the_cpu_while_a_gpu_is_visible_trains_on_the_cpu():
    gpu_teacher = tiny_ddpm_pipeline().to("cuda")
    gpu_student = with_unet(gpu_teacher, diffprune.remove_units(gpu_teacher.unet, ["mid_block"]))
    settings = DistillSettings(steps=1, batch_size=2, ema_decay=None)
    calibration = CalibrationSettings(num_samples=2, num_inference_steps=1, show_progress=False)
    diffprune.distill(gpu_student, gpu_teacher, settings, calibration, show_progress=False)  # accelerate state on cuda
    teacher = tiny_ddpm_pipeline()
    student = with_unet(teacher, diffprune.remove_units(teacher.unet, ["mid_block"]))
    distilled, _ = diffprune.distill(student, teacher, settings, calibration, show_progress=False)
    assert placement_of(distilled.unet).device.type == "cpu"


def test_evaluate_on_cuda_times_synchronised_runs():
    pipeline = tiny_sd_pipeline()
    report = diffprune.evaluate(
        pipeline,
        metrics="latency,macs",
        num_samples=2,
        device="cuda",
        dtype="fp16",
        show_progress=False,
        latency={"num_inference_steps": 2},
    )
    timing = report["results"]["latency"]["denoiser_forward"]
    assert timing["device"].startswith("cuda") and timing["dtype"] == "float16"
    assert timing["runs"] >= 20 and "peak_memory_mb" in timing
