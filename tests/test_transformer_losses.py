"""Training-time losses of diffusion transformers (loss-based criteria, distillation), on tiny SD3 and FLUX
pipelines built as they ship (the adapter's call is checked against every family's pipeline in
test_families.py): the criteria score every block and branch, and distillation moves a depth cut toward its
teacher."""

import pytest
import torch
from diffusers import DiffusionPipeline
from tiny_transformers import (
    tiny_flux_pipeline,
    tiny_sd3_pipeline,
)
from untouched import assert_untouched, snapshot

import diffprune
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.models.components import with_denoiser
from diffprune.recovery.distillation import DistillSettings, distill, matched_blocks
from diffprune.structure.transformer_depth import remove_blocks

PROMPTS = ["a 1", "b 2"]
CALIBRATION = dict(num_samples=4, num_inference_steps=2, prompts=PROMPTS)


@pytest.mark.parametrize("criterion", ["taylor", "output-loss", "gradflow"])
def test_loss_based_criteria_score_every_block_and_branch_of_sd3(criterion):
    pipeline = tiny_sd3_pipeline()
    before = snapshot(pipeline)
    result = diffprune.prune(
        pipeline,
        criterion,
        diffprune.Budget(num_units=1),
        calibration=CalibrationSettings(**CALIBRATION),
        show_progress=False,
    )
    blocks = ["transformer_blocks.0", "transformer_blocks.1", "transformer_blocks.2"]
    branches = [f"transformer_blocks.{i}.{leaf}" for i in range(3) for leaf in ("attn", "ff", "ff_context")]
    branches += ["transformer_blocks.3.attn", "transformer_blocks.3.ff"]  # the last block drops the text stream
    assert sorted(result.scores) == sorted(blocks + branches)
    assert all(torch.isfinite(torch.tensor(list(result.scores.values()))))
    assert len(set(result.scores.values())) > 1, "every unit scored the same: the loss does not see the gates"
    assert len(result.removed) == 1
    assert_untouched(before, pipeline)


def test_a_bf16_flux_pipeline_scores_with_a_loss_in_bf16():
    pipeline = tiny_flux_pipeline().to(torch.bfloat16)
    result = diffprune.prune(
        pipeline,
        "output-loss",
        diffprune.Budget(num_units=1),
        calibration=CalibrationSettings(**CALIBRATION),
        show_progress=False,
    )
    assert {p.dtype for p in result.pipeline.transformer.parameters()} == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(list(result.scores.values()))))
    # 2 double-stream blocks (each with its joint attention, ff, ff_context) + 3 single-stream blocks (each with
    # its attention)
    assert len(result.scores) == 2 * 4 + 3 * 2


def _teacher_gap(adapter, student, teacher, clean):
    """Mean squared difference between student and teacher predictions on fixed noisy inputs."""
    generator = torch.Generator().manual_seed(123)
    batch = adapter.training_noise.draw(clean, generator)
    conditioning = adapter.conditioning(list(range(clean.shape[0])))
    with torch.no_grad():
        gap = adapter.predict(student, batch.noisy, batch.timesteps, conditioning)
        gap = gap - adapter.predict(teacher, batch.noisy, batch.timesteps, conditioning)
    return gap.square().mean().item()


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_distillation_brings_a_depth_cut_closer_to_its_teacher(family, tmp_path):
    build = {"sd3": tiny_sd3_pipeline, "flux": tiny_flux_pipeline}[family]
    teacher = build()
    cut_blocks = (
        ["transformer_blocks.1"] if family == "sd3" else ["transformer_blocks.0", "single_transformer_blocks.1"]
    )
    student = with_denoiser(teacher, remove_blocks(teacher.transformer, cut_blocks))
    if family == "sd3":  # feature distillation pairs the stacks' last blocks, renumbered by the cut
        pairs = matched_blocks(student.transformer, teacher.transformer)
        assert pairs == {"transformer_blocks[-1]": ("transformer_blocks.2", "transformer_blocks.3")}
    calibration = CalibrationSettings(**CALIBRATION)
    adapter = adapter_for(teacher, calibration)
    clean = adapter.final_latents(1)[:, 0]
    gap_before = _teacher_gap(adapter, student.transformer, teacher.transformer, clean)
    before = snapshot(student), snapshot(teacher)
    # Pure distillation: a random-weight teacher is no denoiser, so the task loss would pull the other way.
    settings = DistillSettings(steps=40, batch_size=4, learning_rate=1e-3, task_weight=0, ema_decay=None)
    distilled, history = distill(student, teacher, settings, calibration, work_dir=tmp_path, show_progress=False)
    assert_untouched(before[0], student)
    assert_untouched(before[1], teacher)
    assert set(history[0]) >= {"output", "feature"}
    gap_after = _teacher_gap(adapter, distilled.transformer, teacher.transformer, clean)
    assert gap_after < 0.5 * gap_before, (gap_before, gap_after)
    assert type(distilled.transformer) is type(teacher.transformer)
    distilled.save_pretrained(tmp_path / "distilled")
    reloaded = DiffusionPipeline.from_pretrained(tmp_path / "distilled", **_absent_components(teacher))
    assert reloaded.transformer.config.num_layers == student.transformer.config.num_layers
    torch.testing.assert_close(reloaded.transformer.state_dict(), distilled.transformer.state_dict())


def _absent_components(pipeline) -> dict:
    """Stock from_pretrained needs the components a pipeline was saved without (SD3's T5) passed as None."""
    return {name: None for name, component in pipeline.components.items() if component is None and "3" in name}


def test_a_bf16_sd3_cut_distils_in_bf16(tmp_path):
    teacher = tiny_sd3_pipeline().to(torch.bfloat16)
    student = with_denoiser(teacher, remove_blocks(teacher.transformer, ["transformer_blocks.0"]))
    distilled, history = distill(
        student,
        teacher,
        DistillSettings(steps=2, batch_size=2),
        CalibrationSettings(**CALIBRATION),
        show_progress=False,
    )
    assert {p.dtype for p in distilled.transformer.parameters()} == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in history)
