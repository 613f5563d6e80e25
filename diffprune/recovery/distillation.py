"""Recovering quality by distillation from the original (as in BK-SDM and LD-Pruner's fine-tuning).

loss = w_task * ||eps_student - target||^2                      (the denoising loss)
     + w_output * ||eps_student - eps_teacher||^2               (output distillation)
     + w_feature * sum_b ||h_b,student - h_b,teacher||^2        (feature distillation at block outputs)
Blocks are paired by name in UNets (down_blocks.i, mid_block, up_blocks.i exist in both, whatever was cut
inside) and by the last block of each stack in diffusion transformers (matched_blocks).
With w_output = w_feature = 0 this is plain fine-tuning without the teacher (the benchmark's control).
Data-free by default: clean latents are the teacher's own generations from the calibration set.
accelerate handles data parallelism (each process takes its share of every batch) and mixed precision;
AdamW; EMA via diffusers' EMAModel; checkpoints without pickle for resume.

Devices and precision: training runs where the student pipeline lives (under a multi-GPU launch, on each
process's own GPU). The student trains as an fp32 copy (fp32 master weights: AdamW updates of 1e-4 x a
weight vanish in bf16's 8-bit mantissa), under autocast in the pipeline's precision when that is bf16 or
fp16, and comes back in the pipeline's dtype (or `dtype`). The teacher runs in its own dtype, and every
batch is put on the device and dtype of the model it feeds (devices.place).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from diffprune.devices import place, placement_of, torch_dtype
from diffprune.distributed import accelerator_for, training_device
from diffprune.errors import DiffpruneError
from diffprune.families import family_of
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.models.components import with_denoiser
from diffprune.models.training_noise import TrainingNoise
from diffprune.module_state import leaves_pipelines_untouched
from diffprune.recovery.checkpoints import load_checkpoint, save_checkpoint
from diffprune.structure.denoiser import denoiser_of
from diffprune.structure.hooks import watch
from diffprune.structure.transformer_depth import block_gate_form

MATCHED_BLOCK_LISTS = ("down_blocks", "up_blocks")


@dataclass
class DistillSettings:
    steps: int = 200
    batch_size: int = 8
    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    task_weight: float = 1.0
    output_weight: float = 1.0
    feature_weight: float = 1.0
    ema_decay: float | None = 0.999
    mixed_precision: str | None = None  # "no", "fp16", "bf16" (accelerate autocast); None: the result's dtype
    checkpoint_every: int = 50
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise DiffpruneError("`steps`, `batch_size` and `checkpoint_every` must be at least 1")
        if min(self.task_weight, self.output_weight, self.feature_weight) < 0:
            raise DiffpruneError("loss weights must be non-negative")
        if self.mixed_precision not in (None, "no", "fp16", "bf16"):
            raise DiffpruneError("`mixed_precision` must be no, fp16 or bf16")

    @property
    def uses_teacher(self) -> bool:
        return self.output_weight > 0 or self.feature_weight > 0


def matched_blocks(student, teacher) -> dict[str, tuple[str, str]]:
    """Blocks whose outputs have the same meaning and shape in both models: {name: (student path, teacher path)}.

    UNets: the top-level blocks present in both (down_blocks.i, mid_block, up_blocks.i, whatever was cut
    inside). Diffusion transformers: the last block of each stack (what enters the output layer, or FLUX's
    single-stream stack), since a depth cut renumbers the blocks in between.
    """
    family = family_of(teacher)
    if family.is_transformer:
        student_blocks = family.output_blocks(student)
        return {name: (student_blocks[name], path) for name, path in family.output_blocks(teacher).items()}
    pairs = {}
    for list_name in MATCHED_BLOCK_LISTS:
        count = min(len(getattr(student, list_name)), len(getattr(teacher, list_name)))
        pairs.update({f"{list_name}.{index}": (f"{list_name}.{index}",) * 2 for index in range(count)})
    if student.mid_block is not None and teacher.mid_block is not None:
        pairs["mid_block"] = ("mid_block", "mid_block")
    return pairs


class BlockOutputs:
    """Records the main output tensor of blocks, by name ({name: module path}), through the one hook mechanism
    (structure/hooks.py); a two-stream transformer block returns (text, image) states: the image stream is kept."""

    def __init__(self, model, paths: dict[str, str]):
        self.outputs: dict[str, torch.Tensor] = {}
        names = {path: name for name, path in paths.items()}
        forms = _block_forms(model)
        self._watching = watch(model, {path: forms.get(path) for path in paths.values()}, self._keep(names))
        self._watching.__enter__()

    def _keep(self, names):
        def keep(path, call):
            self.outputs[names[path]] = call.outputs[0]

        return keep

    def remove(self):
        self._watching.__exit__(None, None, None)


def _block_forms(model) -> dict[str, str]:
    """{block path: gate form} of a diffusion transformer's blocks ({} for a UNet: one stream everywhere)."""
    family = family_of(model)
    if not family.is_transformer:
        return {}
    return {
        f"{stack.attribute}.{index}": block_gate_form(stack)
        for stack in family.stacks
        for index in range(len(getattr(model, stack.attribute)))
    }


def distillation_loss(student_prediction, target, teacher_prediction, student_features, teacher_features, settings):
    parts = {"task": F.mse_loss(student_prediction.float(), target.float())}
    if settings.output_weight > 0:
        parts["output"] = F.mse_loss(student_prediction.float(), teacher_prediction.float())
    if settings.feature_weight > 0:
        parts["feature"] = sum(
            F.mse_loss(student_features[name].float(), teacher_features[name].float()) for name in teacher_features
        )
    total = settings.task_weight * parts["task"]
    total = total + settings.output_weight * parts.get("output", 0) + settings.feature_weight * parts.get("feature", 0)
    return total, {key: float(value.detach()) for key, value in parts.items()}


def mixed_precision_for(settings: DistillSettings, dtype: torch.dtype, device: torch.device) -> str:
    """The autocast precision: the settings' choice, else the precision the result is returned in."""
    chosen = settings.mixed_precision or {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "no")
    if chosen == "fp16" and device.type == "cpu":
        raise DiffpruneError(
            "fp16 training needs a GPU (`device` cuda); on a CPU use `dtype` bf16 or `mixed_precision` bf16"
        )
    return chosen


@leaves_pipelines_untouched("student_pipeline", "teacher_pipeline")  # the teacher moves to the device
def distill(
    student_pipeline,
    teacher_pipeline,
    settings: DistillSettings | None = None,
    calibration: CalibrationSettings | None = None,
    work_dir: str | Path | None = None,
    show_progress: bool = True,
    dtype: str | None = None,
):
    """Train the student pipeline's denoiser (UNet or transformer) toward the teacher; returns a new pipeline (inputs untouched) and
    the loss history. With work_dir, checkpoints are written there and an interrupted run resumes.

    dtype: "fp32", "bf16" or "fp16" (GPU) for the returned denoiser (and, unless settings.mixed_precision says
    otherwise, the autocast precision of training); None keeps the student pipeline's dtype.
    """
    # deferred: it imports transformers and peft (seconds), which only training needs
    from diffusers.training_utils import EMAModel

    settings = settings or DistillSettings()
    # a copy: the caller's settings are left as they were
    calibration = dataclasses.replace(calibration or CalibrationSettings(num_samples=64), show_progress=show_progress)
    if type(student_pipeline) is not type(teacher_pipeline):
        raise DiffpruneError(
            f"student is a {type(student_pipeline).__name__} but the teacher is a {type(teacher_pipeline).__name__}; "
            "distill from the pipeline the student was pruned from"
        )
    student_placement = placement_of(denoiser_of(student_pipeline))
    result_dtype = torch_dtype(dtype, student_placement.device) or student_placement.dtype
    device = training_device(student_placement.device)
    accelerator = accelerator_for(device, mixed_precision_for(settings, result_dtype, device))
    teacher_adapter = adapter_for(teacher_pipeline, calibration)
    teacher_adapter.check_losses_supported()
    teacher = denoiser_of(teacher_pipeline).eval().requires_grad_(False).to(device)
    user_latents = teacher_adapter.user_latents()
    clean_latents = (  # the user's images, or data-free: the teacher's own generations
        user_latents.float().cpu()
        if user_latents is not None
        else teacher_adapter.final_latents(1, "teacher samples")[:, 0]
    )

    # fp32 master weights, however the pipeline is stored.
    student = (
        # nn.Module.to: ModelMixin.to warns on every dtype cast, even with nothing to keep in fp32
        torch.nn.Module.to(copy.deepcopy(denoiser_of(student_pipeline)), device=device, dtype=torch.float32)
        .train()
        .requires_grad_(True)
    )
    optimizer = torch.optim.AdamW(student.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    student, optimizer = accelerator.prepare(student, optimizer)
    unwrapped = accelerator.unwrap_model(student)
    # Made after prepare, from the parameters that train, so the shadow weights share their device.
    ema = EMAModel(unwrapped.parameters(), decay=settings.ema_decay) if settings.ema_decay else None
    checkpoint = Path(work_dir) / "checkpoint" if work_dir else None
    start, history = 0, []
    if checkpoint is not None and (checkpoint / "state.json").exists():
        start, ema_state, extra = load_checkpoint(checkpoint, unwrapped, getattr(optimizer, "optimizer", optimizer))
        if extra.get("settings") != asdict(settings):
            raise DiffpruneError(f"{work_dir} holds a checkpoint from different settings; use a new `out` folder")
        history = extra.get("history", [])
        if ema is not None and ema_state is not None:
            for (name, _), shadow in zip(unwrapped.named_parameters(), ema.shadow_params, strict=True):
                shadow.copy_(ema_state[name])
            ema.optimization_step = extra.get("ema_step", 0)
    pairs = matched_blocks(unwrapped, teacher)
    student_hooks = BlockOutputs(unwrapped, {name: paths[0] for name, paths in pairs.items()})
    teacher_hooks = BlockOutputs(teacher, {name: paths[1] for name, paths in pairs.items()})
    training_noise = TrainingNoise.for_pipeline(teacher_pipeline)
    student_adapter = adapter_for(student_pipeline, calibration)
    count = clean_latents.shape[0]

    progress = tqdm(
        range(start, settings.steps), desc="distill", disable=not (show_progress and accelerator.is_main_process)
    )
    for step in progress:
        # The batch depends only on (seed, step): a resumed run sees exactly the batches it would have seen.
        generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
        # Draw for the whole batch, then take this process's share, so 1 and N processes see the same samples.
        indices = torch.randint(0, count, (settings.batch_size,), generator=generator)
        noise = torch.randn((settings.batch_size, *clean_latents.shape[1:]), generator=generator)
        positions = training_noise.draw_timesteps(settings.batch_size, generator)
        share = slice(accelerator.process_index, None, accelerator.num_processes)
        if len(range(settings.batch_size)[share]) == 0:
            share = slice(0, 1)
        indices = indices[share].tolist()
        clean = place(clean_latents[indices], unwrapped)
        batch = training_noise.noise(clean, noise[share], positions[share])
        conditioning = student_adapter.conditioning(indices)
        teacher_prediction = None
        if settings.uses_teacher:
            with torch.no_grad():
                teacher_prediction = teacher_adapter.predict(
                    teacher, *place((batch.noisy, batch.timesteps, conditioning), teacher)
                )
        with accelerator.autocast():
            student_prediction = student_adapter.predict(
                student, *place((batch.noisy, batch.timesteps, conditioning), unwrapped)
            )
            loss, parts = distillation_loss(
                student_prediction,
                batch.target,
                teacher_prediction,
                student_hooks.outputs,
                teacher_hooks.outputs,
                settings,
            )
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(unwrapped.parameters())
        history.append({"step": step + 1, "loss": float(loss.detach()), **parts})
        progress.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if (
            checkpoint is not None
            and accelerator.is_main_process
            and ((step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps)
        ):
            ema_state = (
                {
                    name: shadow
                    for (name, _), shadow in zip(unwrapped.named_parameters(), ema.shadow_params, strict=True)
                }
                if ema
                else None
            )
            extra = {"settings": asdict(settings), "history": history, "ema_step": ema.optimization_step if ema else 0}
            save_checkpoint(
                checkpoint, step + 1, unwrapped, getattr(optimizer, "optimizer", optimizer), ema_state, extra
            )
    student_hooks.remove()
    teacher_hooks.remove()
    final = accelerator.unwrap_model(student, keep_fp32_wrapper=False).eval().requires_grad_(False)
    if ema is not None:
        ema.copy_to(final.parameters())
    final = torch.nn.Module.to(final, device=student_placement.device, dtype=result_dtype)

    pipeline = with_denoiser(student_pipeline, final)
    return pipeline, history


def distillation_report(student: str, teacher: str, settings: DistillSettings, history: list[dict]) -> dict:
    """What distillation_report.json in a distilled folder says: where the student and teacher came from, the
    settings and the loss history."""
    return {"student": student, "teacher": teacher, "settings": asdict(settings), "history": history}
