"""DiT (DiTTransformer2DModel), class-conditional: one stack of adaLN blocks; a depth cut is the stock class
with fewer blocks. The first block stays: DiT's output layer takes its conditioning from that block's embedder
(`transformer_blocks[0].norm1.emb`).

Its "prompts" are class labels: names from the pipeline's `labels` or integer ids. The pipeline passes integer
timesteps and class ids, and keeps the noise half of the learnt-variance output.
"""

from __future__ import annotations

import torch
from diffusers import DiTTransformer2DModel

from diffprune.errors import DiffpruneError
from diffprune.families.pixart import first_half_if_learnt_variance
from diffprune.families.registry import Family, Stack, register


@register(DiTTransformer2DModel)
class DiT(Family):
    name = "dit"
    stacks = (Stack("transformer_blocks", "num_layers"),)

    def fixed_blocks(self, model):
        return {"transformer_blocks.0"}

    def num_classes(self, model) -> int | None:
        return model.config.get("num_embeds_ada_norm")

    def class_ids(self, pipeline, labels) -> list[int]:
        """Class ids for labels given as integers ("207") or as names the pipeline knows ("white shark")."""
        known = getattr(pipeline, "labels", None) or {}
        num_classes = self.num_classes(pipeline.transformer)
        ids = []
        for label in labels:
            text = str(label).strip()
            if text.isdigit():
                ids.append(int(text))
            elif text in known:
                ids.append(int(known[text]))
            else:
                hint = f"one of its {len(known)} label names or " if known else ""
                raise DiffpruneError(
                    f"{text!r} is not a class of this {type(pipeline).__name__}; pass {hint}an integer id"
                )
            if num_classes is not None and not 0 <= ids[-1] < num_classes:
                raise DiffpruneError(
                    f"class id {ids[-1]} is out of range; this model has classes 0 to {num_classes - 1}"
                )
        return ids

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or config.sample_size
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, size, size, generator=generator),
            "timestep": torch.full((batch_size,), 500, dtype=torch.long),
            "class_labels": torch.zeros(batch_size, dtype=torch.long),
        }

    def encode(self, pipeline, prompts, device):
        return {"class_labels": torch.tensor(self.class_ids(pipeline, prompts), device=device)}

    def encode_negative(self, pipeline, device):
        """DiTPipeline's guidance pairs every label with the null class of its label dropout: id 1000 in the
        pipeline, which is `num_embeds_ada_norm` (the embedding's extra last row) for the ImageNet models."""
        return {"class_labels": torch.tensor([self.num_classes(pipeline.transformer)], device=device)}

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        timesteps = timesteps.expand(noisy.shape[0]) if timesteps.ndim < 1 or len(timesteps) == 1 else timesteps
        prediction = model(noisy, timestep=timesteps, class_labels=conditioning["class_labels"]).sample
        return first_half_if_learnt_variance(prediction, noisy)
