"""Distillation lowers the student-teacher gap on held-out seeds; resume continues to the same state."""

import json

import pytest
import torch
from tiny_models import tiny_ddpm_pipeline
from untouched import assert_untouched, snapshot

import diffprune
from diffprune.errors import DiffpruneError
from diffprune.models.adapters import CalibrationSettings
from diffprune.models.components import with_unet
from diffprune.recovery.distillation import DistillSettings, distill, matched_blocks


def _student_and_teacher():
    teacher = tiny_ddpm_pipeline()
    cut = diffprune.remove_units(teacher.unet, ["mid_block", "down_blocks.0.resnets.1", "up_blocks.0.attentions.0"])
    return with_unet(teacher, cut), teacher


def _held_out_gap(student, teacher) -> float:
    """Mean squared difference of noise predictions on held-out noisy inputs (seeds unseen in training)."""
    generator = torch.Generator().manual_seed(12345)
    x = torch.randn(8, 1, 16, 16, generator=generator)
    t = torch.randint(0, 50, (8,), generator=generator)
    with torch.no_grad():
        return float((student.unet(x, t).sample - teacher.unet(x, t).sample).square().mean())


CALIBRATION = dict(num_samples=8, num_inference_steps=3)


def test_short_distillation_lowers_the_output_error_on_held_out_seeds_and_leaves_its_inputs_alone():
    student, teacher = _student_and_teacher()
    teacher.unet.train()  # distill() freezes the teacher and switches it to eval inside, then restores both
    student_before, teacher_before = snapshot(student), snapshot(teacher)
    before = _held_out_gap(student, teacher)
    settings = DistillSettings(steps=30, batch_size=8, learning_rate=3e-4, ema_decay=None, task_weight=0.0)
    distilled, history = distill(student, teacher, settings, CalibrationSettings(**CALIBRATION), show_progress=False)
    assert_untouched(student_before, student)
    assert_untouched(teacher_before, teacher)
    assert _held_out_gap(distilled, teacher) < 0.8 * before
    assert len(history) == 30
    assert type(distilled.unet).__name__ == "PrunedUNet2DModel"


def test_resume_from_a_checkpoint_continues_to_the_same_state(tmp_path, monkeypatch):
    settings = DistillSettings(steps=6, batch_size=4, checkpoint_every=3)
    student, teacher = _student_and_teacher()
    uninterrupted, _ = distill(student, teacher, settings, CalibrationSettings(**CALIBRATION), show_progress=False)

    import diffprune.recovery.distillation as module

    real_save = module.save_checkpoint

    def save_then_stop(folder, step, *args, **kwargs):
        real_save(folder, step, *args, **kwargs)
        if step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(module, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        distill(student, teacher, settings, CalibrationSettings(**CALIBRATION), work_dir=tmp_path, show_progress=False)
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 3
    monkeypatch.setattr(module, "save_checkpoint", real_save)
    resumed, history = distill(
        student, teacher, settings, CalibrationSettings(**CALIBRATION), work_dir=tmp_path, show_progress=False
    )
    assert [entry["step"] for entry in history] == list(range(1, 7))
    for (name, a), b in zip(uninterrupted.unet.named_parameters(), resumed.unet.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_blocks_pair_by_name_even_when_inner_units_are_cut():
    student, teacher = _student_and_teacher()
    names = ["down_blocks.0", "down_blocks.1", "up_blocks.0", "up_blocks.1", "mid_block"]
    assert matched_blocks(student.unet, teacher.unet) == {name: (name, name) for name in names}


def test_text_to_image_distillation_runs_with_prompt_conditioning(sd):
    teacher = sd
    student = with_unet(teacher, diffprune.remove_units(teacher.unet, ["down_blocks.0.attentions.1"]))
    calibration = CalibrationSettings(num_samples=2, num_inference_steps=2, prompts=["a 1", "a 2"])
    _, history = distill(student, teacher, DistillSettings(steps=2, batch_size=2), calibration, show_progress=False)
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in history)


def test_impossible_settings_are_user_errors():
    with pytest.raises(DiffpruneError, match="`checkpoint_every`"):
        DistillSettings(checkpoint_every=0)


def test_mismatched_teacher_is_a_user_error(sd):
    student, _ = _student_and_teacher()
    with pytest.raises(DiffpruneError, match="distill from the pipeline the student was pruned from"):
        distill(
            student,
            sd,
            DistillSettings(steps=1),
            CalibrationSettings(**CALIBRATION),
            show_progress=False,
        )
