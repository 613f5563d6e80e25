"""A saved cut loads where diffprune cannot be imported (its own code, trust_remote_code), as a pipeline and as a
lone UNet, with the outputs diffprune gives; and a diffusers-style fine-tuning loop trains, saves and reloads it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoModel, DDPMScheduler
from tiny_models import tiny_sd_pipeline

import diffprune
from diffprune.families import example_inputs
from diffprune.models.saved_cuts import save_pipeline
from diffprune.structure import removal, units

REMOVED = [
    "down_blocks.0.attentions.1",
    "down_blocks.0.resnets.1",
    "up_blocks.1.attentions.2.transformer_blocks.0.attn2",
]

# Runs in a fresh interpreter: importing diffprune raises, so only the folder's code can build the cut.
WITHOUT_DIFFPRUNE = """
import sys
sys.modules["diffprune"] = None
import numpy as np, torch
from diffusers import AutoModel, DiffusionPipeline
folder, out = sys.argv[1], sys.argv[2]
torch.set_num_threads(int(sys.argv[3]))  # the parent's: CPU kernels sum in an order that depends on it
pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
images = pipe(["a 7", "a 3"], num_inference_steps=3, guidance_scale=5.0, output_type="np",
              generator=torch.Generator().manual_seed(0), height=32, width=32).images
unet = AutoModel.from_pretrained(folder, subfolder="unet", trust_remote_code=True)
inputs = torch.load(out + "/inputs.pt", weights_only=True)
with torch.no_grad():
    sample = unet(**inputs).sample
np.save(out + "/images.npy", images)
np.save(out + "/sample.npy", sample.numpy())
print(type(pipe.unet).__mro__[1].__module__, sorted(unet.config.removed_units))
"""


def _cut_pipeline():
    pipeline = tiny_sd_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    pipeline.unet = diffprune.remove_units(pipeline.unet, REMOVED)
    return pipeline


def _generate(pipeline):
    return pipeline(
        ["a 7", "a 3"],
        num_inference_steps=3,
        guidance_scale=5.0,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
        height=32,
        width=32,
    ).images


def test_the_shipped_code_is_diffprunes_own_removal_module(tmp_path):
    save_pipeline(_cut_pipeline(), tmp_path)
    assert (tmp_path / "unet" / "diffprune.py").read_bytes() == Path(removal.__file__).read_bytes()
    assert removal.RESIDUAL_BRANCH == units.RESIDUAL_BRANCH  # configs store gate forms by this name
    config = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert config["auto_map"] == {"AutoModel": "diffprune.PrunedUNet2DConditionModel"}


def test_a_fresh_interpreter_without_diffprune_loads_the_pipeline_and_the_unet(tmp_path):
    pipeline = _cut_pipeline()
    folder, out = tmp_path / "cut", tmp_path / "out"
    out.mkdir()
    save_pipeline(pipeline, folder)
    inputs = example_inputs(pipeline.unet, 2, text_length=6, generator=torch.Generator().manual_seed(1))
    torch.save(inputs, out / "inputs.pt")
    script = tmp_path / "load.py"
    script.write_text(WITHOUT_DIFFPRUNE)
    # Outside the repository, with its own module cache, so nothing but the folder can supply the code.
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    argv = [sys.executable, str(script), str(folder), str(out), str(torch.get_num_threads())]
    run = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[0].startswith("diffusers_modules"), "the class came from the folder's code"
    assert run.stdout.split("[", 1)[1].count("'") == 2 * len(REMOVED)
    np.testing.assert_array_equal(np.load(out / "images.npy"), _generate(pipeline))
    with torch.no_grad():
        expected = pipeline.unet(**inputs).sample.numpy()
    np.testing.assert_array_equal(np.load(out / "sample.npy"), expected)


def test_diffusers_style_fine_tuning_of_a_pruned_unet_round_trips(tmp_path):
    """The README recipe: load the UNet alone with AutoModel, train the standard noise-prediction loss, save,
    reload, same outputs; the saved UNet still carries its code and still refuses stock classes."""
    save_pipeline(_cut_pipeline(), tmp_path / "cut")
    folder = str(tmp_path / "cut")
    unet = AutoModel.from_pretrained(folder, subfolder="unet", trust_remote_code=True)
    before = {name: value.clone() for name, value in unet.state_dict().items()}
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    unet.train()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        latents = torch.randn(2, 4, 16, 16, generator=generator)
        encoder_hidden_states = torch.randn(2, 6, 24, generator=generator)
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (2,), generator=generator)
        noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
        prediction = unet(noisy_latents, timesteps, encoder_hidden_states).sample
        loss = torch.nn.functional.mse_loss(prediction.float(), noise.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert any(not torch.equal(before[name], value) for name, value in unet.state_dict().items())
    unet.eval().save_pretrained(tmp_path / "tuned")
    assert (tmp_path / "tuned" / "diffprune.py").is_file()
    reloaded = AutoModel.from_pretrained(str(tmp_path / "tuned"), trust_remote_code=True)
    with_diffprune = diffprune.PrunedUNet2DConditionModel.from_pretrained(tmp_path / "tuned")
    inputs = example_inputs(unet, 2, text_length=6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = unet(**inputs).sample
        torch.testing.assert_close(reloaded(**inputs).sample, expected, rtol=0, atol=0)
        torch.testing.assert_close(with_diffprune(**inputs).sample, expected, rtol=0, atol=0)
