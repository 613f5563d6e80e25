"""Run by test_distributed.py under accelerate with 2 processes: data-parallel distillation of a tiny cut."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import tiny_ddpm_pipeline  # noqa: E402

import diffprune  # noqa: E402
from diffprune.distributed import process_state  # noqa: E402
from diffprune.models.adapters import CalibrationSettings  # noqa: E402
from diffprune.models.components import with_unet  # noqa: E402
from diffprune.recovery.distillation import DistillSettings, distill  # noqa: E402


def distilled_weights() -> dict:
    torch.set_num_threads(1)
    teacher = tiny_ddpm_pipeline()
    student = with_unet(teacher, diffprune.remove_units(teacher.unet, ["mid_block"]))
    settings = DistillSettings(steps=3, batch_size=4, learning_rate=1e-3, ema_decay=None)
    pipeline, _ = distill(
        student, teacher, settings, CalibrationSettings(num_samples=8, num_inference_steps=2), show_progress=False
    )
    return {name: value.detach().clone() for name, value in pipeline.unet.state_dict().items()}


if __name__ == "__main__":
    weights = distilled_weights()
    state = process_state()
    if state.is_main_process:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in weights.items()}, sys.argv[1])
