"""Text-to-image diffusion transformers (SD3, FLUX, PixArt-alpha/Sigma, Sana): each family's prompt encoding
and denoiser call, for the training-time losses (loss-based criteria, distillation).

Both follow the pipeline's own `__call__`: prompts are encoded by the pipeline's `encode_prompt` with the
call's defaults (SD3's 256-token T5 slot, Sana's complex human instruction, ...), and the transformer is called
as the denoising loop calls it:
  * SD3: (hidden_states, timestep = sigma * 1000, encoder_hidden_states, pooled_projections);
  * FLUX: packed 2x2 latents (the layout its final latents have), timestep = sigma, position ids of a square
    grid (the pipeline's default size), the guidance embedding at the call's default guidance;
  * PixArt: (hidden_states, encoder_hidden_states + attention mask, integer timestep, resolution conditions),
    the learnt-variance half of its output dropped;
  * Sana: (hidden_states, encoder_hidden_states + attention mask, timestep x timestep_scale).
Classifier-free guidance plays no part in training losses: the conditional branch alone is the model.
"""

from __future__ import annotations

import inspect
import math

import torch

from diffprune.errors import DiffpruneError
from diffprune.models.adapters.text_conditioned import TextConditionedAdapter

FAMILIES = ("SD3", "Flux", "PixArt", "Sana")


def transformer_family(model) -> str:
    name = type(model).__name__
    for cls in type(model).__mro__:  # a branch cut is a Pruned* subclass of the stock class
        for family in FAMILIES:
            if cls.__name__.startswith(family):
                return family
    raise DiffpruneError(
        f"loss-based criteria and distillation do not know how to call a {name}; supported transformers: "
        f"{', '.join(f + '...' for f in FAMILIES)}; use `criterion` ld-pruner, magnitude or random"
    )


def call_defaults(pipeline, names) -> dict:
    """The pipeline call's own defaults for these parameters (those it has)."""
    parameters = inspect.signature(pipeline.__call__).parameters
    return {name: parameters[name].default for name in names if name in parameters}


class TransformerTextAdapter(TextConditionedAdapter):
    def __init__(self, pipeline, settings):
        super().__init__(pipeline, settings)
        self.transformer_family = transformer_family(self.denoiser)

    def check_losses_supported(self, model=None) -> None:
        transformer_family(model if model is not None else self.denoiser)

    def encode(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        pipeline, device, family = self.pipeline, self.device, self.transformer_family
        if family == "SD3":
            defaults = call_defaults(pipeline, ("max_sequence_length", "clip_skip"))
            embeds, _, pooled, _ = pipeline.encode_prompt(
                prompts, None, None, device=device, do_classifier_free_guidance=False, **defaults
            )
            return {"encoder_hidden_states": embeds, "pooled_projections": pooled}
        if family == "Flux":
            defaults = call_defaults(pipeline, ("max_sequence_length",))
            embeds, pooled, _ = pipeline.encode_prompt(prompts, None, device=device, **defaults)
            return {"encoder_hidden_states": embeds, "pooled_projections": pooled}
        defaults = call_defaults(pipeline, ("max_sequence_length", "complex_human_instruction", "clean_caption"))
        embeds, mask, _, _ = pipeline.encode_prompt(
            prompts, do_classifier_free_guidance=False, device=device, **defaults
        )
        return {"encoder_hidden_states": embeds, "encoder_attention_mask": mask}

    def encode_negative(self) -> dict[str, torch.Tensor] | None:
        """The pipeline's own encoding of its default negative prompt (Sana's without the complex human
        instruction, as its pipeline does); None for FLUX, which is guidance-distilled (no unconditional half)."""
        pipeline, device, family = self.pipeline, self.device, self.transformer_family
        if family == "Flux":
            return None
        if family == "SD3":
            defaults = call_defaults(pipeline, ("max_sequence_length", "clip_skip"))
            _, negative, _, pooled = pipeline.encode_prompt(
                [""], None, None, device=device, do_classifier_free_guidance=True, **defaults
            )
            return {"encoder_hidden_states": negative, "pooled_projections": pooled}
        defaults = call_defaults(pipeline, ("max_sequence_length", "complex_human_instruction", "clean_caption"))
        _, _, negative, mask = pipeline.encode_prompt([""], do_classifier_free_guidance=True, device=device, **defaults)
        return {"encoder_hidden_states": negative, "encoder_attention_mask": mask}

    def predict(self, model, noisy, timesteps, conditioning) -> torch.Tensor:
        """Config flags are read off the pipeline's own transformer: `model` may be a cut or a wrapped copy."""
        family = self.transformer_family
        if family == "SD3":
            return model(hidden_states=noisy, timestep=timesteps, **conditioning).sample
        if family == "Flux":
            return self._predict_flux(model, noisy, timesteps, conditioning)
        if family == "Sana":
            scale = self.denoiser.config.get("timestep_scale") or 1.0
            return model(noisy, timestep=timesteps * scale, **conditioning).sample
        # PixArt: resolution conditions only where the model takes them (PixArt-alpha 1024), as its pipeline does.
        added = {"resolution": None, "aspect_ratio": None}
        if getattr(self.denoiser, "use_additional_conditions", False):
            factor = self.pipeline.vae_scale_factor
            height, width = noisy.shape[-2] * factor, noisy.shape[-1] * factor
            added = {
                "resolution": noisy.new_tensor([[height, width]]).repeat(noisy.shape[0], 1),
                "aspect_ratio": noisy.new_tensor([[height / width]]).repeat(noisy.shape[0], 1),
            }
        prediction = model(noisy, timestep=timesteps, added_cond_kwargs=added, **conditioning).sample
        if prediction.shape[1] == 2 * noisy.shape[1]:  # learnt variance: the pipeline keeps the first half
            prediction = prediction.chunk(2, dim=1)[0]
        return prediction

    def _predict_flux(self, model, noisy, timesteps, conditioning) -> torch.Tensor:
        """`noisy` in FLUX's packed layout [batch, tokens, 4 x channels], as its final latents are, square as
        at the pipeline's default size (height = width)."""
        pipeline = self.pipeline
        grid = math.isqrt(noisy.shape[1]) if noisy.ndim == 3 else 0
        if grid * grid != noisy.shape[1] or noisy.ndim != 3:
            raise DiffpruneError(
                f"FLUX latents of shape {tuple(noisy.shape)} are not a square grid of packed tokens; calibrate and "
                "distill at the pipeline's default (square) size"
            )
        image_ids = pipeline._prepare_latent_image_ids(noisy.shape[0], grid, grid, noisy.device, noisy.dtype)
        text = conditioning["encoder_hidden_states"]
        text_ids = torch.zeros(text.shape[1], 3, device=noisy.device, dtype=noisy.dtype)
        guidance = None
        if self.denoiser.config.get("guidance_embeds"):
            scale = call_defaults(pipeline, ("guidance_scale",)).get("guidance_scale", 3.5)
            guidance = torch.full((noisy.shape[0],), float(scale), device=noisy.device, dtype=noisy.dtype)
        return model(
            hidden_states=noisy,
            timestep=timesteps / 1000,  # FluxPipeline passes sigma; the model scales it back up
            guidance=guidance,
            img_ids=image_ids,
            txt_ids=text_ids,
            **conditioning,
        ).sample
