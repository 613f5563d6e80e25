"""Run a saved pipeline folder in a fresh interpreter that cannot import diffprune, and get its latents back."""

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

# Importing diffprune raises here, so only stock diffusers (and, with trust_remote_code, the folder's own code)
# can build the pipeline. Threads as the parent's: CPU kernels sum in an order that depends on them.
SCRIPT = """
import json, sys
sys.modules["diffprune"] = None
import torch
from diffusers import DiffusionPipeline
from safetensors.torch import save_file
folder, out, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
torch.set_num_threads(options.pop("threads"))
pipeline = DiffusionPipeline.from_pretrained(folder, trust_remote_code=options.pop("trust_remote_code"))
pipeline.set_progress_bar_config(disable=True)
generator = torch.Generator().manual_seed(options.pop("seed"))
latents = pipeline(**options, generator=generator, output_type="latent").images
save_file({"latents": latents.contiguous()}, out)
print(type(pipeline.transformer).__name__, type(pipeline.transformer).__mro__[1].__module__)
"""


def latents_without_diffprune(folder, out_file, trust_remote_code: bool = False, seed: int = 0, **call):
    """(latents, transformer class name, the module its parent class comes from) of `pipeline(**call)` loaded from `folder` in a fresh
    interpreter (a loaded pipeline has its class's default size: pass height and width)."""
    options = {**call, "seed": seed, "trust_remote_code": trust_remote_code, "threads": torch.get_num_threads()}
    env = {**os.environ, "HF_MODULES_CACHE": str(os.path.dirname(out_file)) + "/modules", "PYTHONPATH": ""}
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), str(out_file), json.dumps(options)],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(out_file),
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    class_name, module = run.stdout.strip().splitlines()[-1].split()
    return load_file(out_file)["latents"], class_name, module
