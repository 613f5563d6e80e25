"""Run by test_distributed.py under accelerate with 2 processes: generate with the seeds split over processes."""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import tiny_ddpm_pipeline  # noqa: E402

from diffprune.distributed import process_state  # noqa: E402
from diffprune.models.generation import generate  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    state = process_state()
    batch = generate(tiny_ddpm_pipeline(), seeds=[3, 4, 5, 6, 7], num_inference_steps=3, show_progress=False)
    if state.is_main_process:
        pixels = [np.asarray(image).astype(int).tolist() for image in batch.images]
        Path(sys.argv[1]).write_text(json.dumps({"num_processes": state.num_processes, "pixels": pixels}))
