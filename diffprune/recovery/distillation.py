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
    settings = settings or DistillSettings()
    # a copy: the caller's settings are left as they were
    calibration = dataclasses.replace(calibration or CalibrationSettings(num_samples=64), show_progress=show_progress)
    check_same_pipeline_class(student_pipeline, teacher_pipeline)
    student_placement = placement_of(denoiser_of(student_pipeline))
    result_dtype = torch_dtype(dtype, student_placement.device) or student_placement.dtype
    device = training_device(student_placement.device)
    accelerator = accelerator_for(device, mixed_precision_for(settings, result_dtype, device))
    teacher_adapter = adapter_for(teacher_pipeline, calibration)
    teacher_adapter.check_losses_supported()
    teacher = denoiser_of(teacher_pipeline).eval().requires_grad_(False).to(device)
    clean_latents = training_latents(teacher_adapter)
    training = StudentTraining(denoiser_of(student_pipeline), settings, accelerator, device)
    checkpoint = Path(work_dir) / "checkpoint" if work_dir else None
    start, history = training.resume(checkpoint, settings)

    pairs = matched_blocks(training.unwrapped, teacher)  # their outputs are the feature loss's terms
    student_hooks = BlockOutputs(training.unwrapped, {name: paths[0] for name, paths in pairs.items()})
    teacher_hooks = BlockOutputs(teacher, {name: paths[1] for name, paths in pairs.items()})
    batches = TrainingBatches(clean_latents, TrainingNoise.for_pipeline(teacher_pipeline), settings, training)
    student_adapter = adapter_for(student_pipeline, calibration)
    progress = tqdm(
        range(start, settings.steps), desc="distill", disable=not (show_progress and accelerator.is_main_process)
    )
    for step in progress:
        indices, batch = batches.at(step)
        conditioning = student_adapter.conditioning(indices)
        teacher_prediction = None
        if settings.uses_teacher:
            with torch.no_grad():
                inputs = place((batch.noisy, batch.timesteps, conditioning), teacher)
                teacher_prediction = teacher_adapter.predict(teacher, *inputs)
        with accelerator.autocast():
            inputs = place((batch.noisy, batch.timesteps, conditioning), training.unwrapped)
            student_prediction = student_adapter.predict(training.student, *inputs)
            features = student_hooks.outputs, teacher_hooks.outputs
            loss, parts = distillation_loss(student_prediction, batch.target, teacher_prediction, *features, settings)
        training.step(loss)
        history.append({"step": step + 1, "loss": float(loss.detach()), **parts})
        progress.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if checkpoint is not None and ((step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps):
            training.save(checkpoint, step + 1, settings, history)
    student_hooks.remove()
    teacher_hooks.remove()
    return with_denoiser(student_pipeline, training.finished(student_placement.device, result_dtype)), history


def check_same_pipeline_class(student_pipeline, teacher_pipeline) -> None:
    if type(student_pipeline) is not type(teacher_pipeline):
        raise DiffpruneError(
            f"student is a {type(student_pipeline).__name__} but the teacher is a {type(teacher_pipeline).__name__}; "
            "distill from the pipeline the student was pruned from"
        )


def training_latents(teacher_adapter) -> torch.Tensor:
    """The clean latents distillation noises: the user's images, or data-free, the teacher's own generations."""
    user_latents = teacher_adapter.user_latents()
    if user_latents is not None:
        return user_latents.float().cpu()
    return teacher_adapter.final_latents(1, "teacher samples")[:, 0]


class StudentTraining:
    """The student as it trains: an fp32 copy of its denoiser (fp32 master weights, however the pipeline is
    stored) under accelerate, AdamW, the EMA of its weights, and their checkpoints without pickle."""

    def __init__(self, denoiser, settings: DistillSettings, accelerator, device):
        # deferred: it imports transformers and peft (seconds), which only training needs
        from diffusers.training_utils import EMAModel

        self.accelerator = accelerator
        # nn.Module.to: ModelMixin.to warns on every dtype cast, even with nothing to keep in fp32
        student = torch.nn.Module.to(copy.deepcopy(denoiser), device=device, dtype=torch.float32)
        student = student.train().requires_grad_(True)
        optimizer = torch.optim.AdamW(
            student.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        self.student, self.optimizer = self.accelerator.prepare(student, optimizer)
        self.unwrapped = self.accelerator.unwrap_model(self.student)
        # Made after prepare, from the parameters that train, so the shadow weights share their device.
        self.ema = EMAModel(self.unwrapped.parameters(), decay=settings.ema_decay) if settings.ema_decay else None

    @property
    def _plain_optimizer(self):
        return getattr(self.optimizer, "optimizer", self.optimizer)

    def step(self, loss) -> None:
        self.accelerator.backward(loss)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.step(self.unwrapped.parameters())

    def resume(self, checkpoint: Path | None, settings: DistillSettings) -> tuple[int, list[dict]]:
        """(the step to start from, the loss history so far): from `checkpoint` when one is there, else (0, [])."""
        if checkpoint is None or not (checkpoint / "state.json").exists():
            return 0, []
        start, ema_state, extra = load_checkpoint(checkpoint, self.unwrapped, self._plain_optimizer)
        if extra.get("settings") != asdict(settings):
            raise DiffpruneError(
                f"{checkpoint.parent} holds a checkpoint from different settings; use a new `out` folder"
            )
        if self.ema is not None and ema_state is not None:
            for (name, _), shadow in zip(self.unwrapped.named_parameters(), self.ema.shadow_params, strict=True):
                shadow.copy_(ema_state[name])
            self.ema.optimization_step = extra.get("ema_step", 0)
        return start, extra.get("history", [])

    def save(self, checkpoint: Path, step: int, settings: DistillSettings, history: list[dict]) -> None:
        if not self.accelerator.is_main_process:
            return
        ema_state = None
        if self.ema is not None:
            names = (name for name, _ in self.unwrapped.named_parameters())
            ema_state = dict(zip(names, self.ema.shadow_params, strict=True))
        extra = {
            "settings": asdict(settings),
            "history": history,
            "ema_step": self.ema.optimization_step if self.ema else 0,
        }
        save_checkpoint(checkpoint, step, self.unwrapped, self._plain_optimizer, ema_state, extra)

    def finished(self, device, dtype: torch.dtype):
        """The trained denoiser (the EMA weights, when kept) on `device` in `dtype`, for inference."""
        final = self.accelerator.unwrap_model(self.student, keep_fp32_wrapper=False).eval().requires_grad_(False)
        if self.ema is not None:
            self.ema.copy_to(final.parameters())
        return torch.nn.Module.to(final, device=device, dtype=dtype)


class TrainingBatches:
    """Step i's batch depends only on (seed, i), so a resumed run sees exactly the batches it would have seen;
    it is drawn for the whole batch, then each process takes its share, so 1 and N processes see the same samples."""

    def __init__(self, clean_latents, training_noise: TrainingNoise, settings: DistillSettings, training):
        self.clean_latents, self.training_noise, self.settings = clean_latents, training_noise, settings
        accelerator = training.accelerator
        self.share = slice(accelerator.process_index, None, accelerator.num_processes)
        if len(range(settings.batch_size)[self.share]) == 0:
            self.share = slice(0, 1)
        self.model = training.unwrapped

    def at(self, step: int):
        """(this process's sample indices, its noised batch) of training step `step`."""
        size, count = self.settings.batch_size, self.clean_latents.shape[0]
        generator = torch.Generator().manual_seed(self.settings.seed * 1_000_003 + step)
        indices = torch.randint(0, count, (size,), generator=generator)
        noise = torch.randn((size, *self.clean_latents.shape[1:]), generator=generator)
        positions = self.training_noise.draw_timesteps(size, generator)
        indices = indices[self.share].tolist()
        clean = place(self.clean_latents[indices], self.model)
        return indices, self.training_noise.noise(clean, noise[self.share], positions[self.share])


def distillation_report(student: str, teacher: str, settings: DistillSettings, history: list[dict]) -> dict:
    """What distillation_report.json in a distilled folder says: where the student and teacher came from, the
    settings and the loss history."""
    return {"student": student, "teacher": teacher, "settings": asdict(settings), "history": history}
