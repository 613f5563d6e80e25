"""Training-time losses of diffusion transformers (loss-based criteria, distillation), on tiny SD3, FLUX,
PixArt-Sigma, PixArt-alpha and Sana pipelines built as they ship: the adapter calls the transformer exactly as the pipeline's own
denoising loop does, the criteria score every block, and distillation moves a depth cut toward its teacher."""

import pytest
import torch
from diffusers import DiffusionPipeline
from tiny_transformers import (
    tiny_flux_pipeline,
    tiny_pixart_alpha_pipeline,
    tiny_pixart_sigma_pipeline,
    tiny_sana_pipeline,
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
# (builder, call arguments without classifier-free guidance, factor from the timestep the pipeline passes to
# diffprune's convention sigma x 1000: FluxPipeline passes sigma itself)
PIPELINES = {
    "sd3": (tiny_sd3_pipeline, {"guidance_scale": 1.0}, 1),
    "flux": (tiny_flux_pipeline, {}, 1000),  # guidance-distilled: guidance goes in through its embedding
    "pixart-sigma": (tiny_pixart_sigma_pipeline, {"guidance_scale": 1.0}, 1),
    "pixart-alpha": (tiny_pixart_alpha_pipeline, {"guidance_scale": 1.0}, 1),  # with resolution conditions
    "sana": (tiny_sana_pipeline, {"guidance_scale": 1.0}, 1),  # Gemma-2 with the complex human instruction
}


def _first_denoiser_call(pipeline, call_arguments):
    """(hidden_states, timestep, prediction) of the first transformer call of the pipeline's own loop."""
    calls = []
    hook = pipeline.transformer.register_forward_hook(
        lambda module, args, kwargs, output: calls.append((args, kwargs, output)), with_kwargs=True
    )
    try:
        pipeline.set_progress_bar_config(disable=True)
        pipeline(
            prompt=PROMPTS,
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(0),
            output_type="latent",
            **call_arguments,
        )
    finally:
        hook.remove()
    args, kwargs, output = calls[0]
    hidden_states = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
    prediction = output[0] if isinstance(output, tuple) else output.sample
    return hidden_states, kwargs["timestep"], prediction


@pytest.mark.parametrize("family", PIPELINES)
def test_the_adapter_calls_the_transformer_as_the_pipeline_does(family):
    build, call_arguments, to_diffprune_timestep = PIPELINES[family]
    pipeline = build()
    hidden_states, timestep, expected = _first_denoiser_call(pipeline, call_arguments)
    if expected.shape[1] == 2 * hidden_states.shape[1] and expected.ndim == 4:  # PixArt's learnt variance
        expected = expected.chunk(2, dim=1)[0]
    adapter = adapter_for(pipeline, CalibrationSettings(num_samples=2, num_inference_steps=2, prompts=PROMPTS))
    with torch.no_grad():
        prediction = adapter.predict(
            pipeline.transformer, hidden_states, timestep * to_diffprune_timestep, adapter.conditioning([0, 1])
        )
    torch.testing.assert_close(prediction, expected, rtol=0, atol=1e-6)


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
    build = PIPELINES[family][0]
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
