"""Recording the sampler's own path: what the denoiser receives at every step of the pipeline's own call.

While `recording_trajectory(pipeline)` is active, a forward pre-hook on the pipeline's denoiser keeps, for every
denoising step of every call, the latents the denoiser receives (after the scheduler's `scale_model_input`,
FLUX's packing, ...: exactly its input) and the step's timestep as the scheduler holds it (`scheduler.timesteps`,
the convention `adapter.predict` and the training noise use: integer t for DDPM-beta models, sigma x 1000 for
flow matching). Classifier-free guidance calls the denoiser on the same latents twice, stacked ([uncond; cond],
DiT: [cond; null]) or as two calls in a row (Qwen-Image, Lumina 2, CogView4); either is recorded once and marks
the trajectory as guided.

Loss-based criteria replay the denoiser on these inputs (criteria/objectives.py): they judge a unit where the
user's sampler actually goes, not at uniformly drawn training timesteps. Stored on the CPU in float32.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from diffprune.errors import DiffpruneError
from diffprune.structure.denoiser import denoiser_of


@dataclass
class Trajectory:
    latents: torch.Tensor  # [num_samples, num_steps, ...] the denoiser's input at each step, float32, CPU
    timesteps: torch.Tensor  # [num_steps] the scheduler's timestep of each step (the convention predict takes)
    guided: bool  # the pipeline ran classifier-free guidance (each step's batch held the latents twice)

    @property
    def num_samples(self) -> int:
        return self.latents.shape[0]

    @property
    def num_steps(self) -> int:
        return self.latents.shape[1]


class TrajectoryRecorder:
    """Collects the denoiser's inputs per pipeline call; `trajectory()` stacks them, calls in order."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self._calls: list[dict] = []

    def _record(self, module, args, kwargs) -> None:
        sample = args[0] if args else kwargs.get("hidden_states", kwargs.get("sample"))
        scheduler = self.pipeline.scheduler  # a fresh copy per calibration call (generation.final_latents)
        half = sample.shape[0] // 2
        guided = sample.shape[0] % 2 == 0 and half > 0 and torch.equal(sample[:half], sample[half:])
        latents = (sample[:half] if guided else sample).detach().float().cpu()
        current = self._calls[-1] if self._calls else None
        if current is not None and current["scheduler"] is scheduler and torch.equal(latents, current["latents"][-1]):
            # The same latents again: guidance as a second call (conditional, then unconditional), one step.
            current["guided"][-1] = True
            return
        if current is None or current["scheduler"] is not scheduler or current["done"]:
            current = {"scheduler": scheduler, "latents": [], "timesteps": [], "guided": [], "done": False}
            self._calls.append(current)
        step = len(current["latents"])
        if step >= len(scheduler.timesteps):
            raise DiffpruneError(
                f"{type(self.pipeline).__name__} calls its denoiser more than once per scheduler step (e.g. FLUX's "
                "true_cfg_scale); the guided objective cannot follow it: use objective=denoising-loss"
            )
        current["latents"].append(latents)
        current["timesteps"].append(torch.as_tensor(scheduler.timesteps[step]).detach().cpu())
        current["guided"].append(guided)
        current["done"] = len(current["latents"]) == len(scheduler.timesteps)

    def trajectory(self) -> Trajectory:
        if not self._calls:
            raise DiffpruneError("no denoiser call was recorded; record while the pipeline samples")
        steps = {len(call["latents"]) for call in self._calls}
        guided = {flag for call in self._calls for flag in call["guided"]}
        if len(steps) != 1 or not all(call["done"] for call in self._calls) or len(guided) != 1:
            raise DiffpruneError(
                f"the recorded calls of {type(self.pipeline).__name__} differ in their steps or guidance; "
                "record calls with the same settings"
            )
        timesteps = torch.stack(self._calls[0]["timesteps"])
        latents = torch.cat([torch.stack(call["latents"], dim=1) for call in self._calls])
        return Trajectory(latents=latents, timesteps=timesteps, guided=guided.pop())


@contextmanager
def recording_trajectory(pipeline):
    """`with recording_trajectory(pipeline) as recorder:` ... pipeline calls ...; `recorder.trajectory()`."""
    recorder = TrajectoryRecorder(pipeline)
    handle = denoiser_of(pipeline).register_forward_pre_hook(recorder._record, with_kwargs=True)
    try:
        yield recorder
    finally:
        handle.remove()
