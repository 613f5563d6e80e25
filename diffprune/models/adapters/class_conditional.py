"""Class-conditional image pipelines (DiT): each calibration sample's condition is a class label, a name the
pipeline knows or an integer id, given where text families take prompts (`prompts`, `--prompts FILE`).

Calibration samples through the pipeline's own call (TaskAdapter); the training-time losses call the
transformer as DiTPipeline's loop does (integer timesteps, class ids, the learnt-variance half of the output
dropped), without guidance, since the model was trained on labelled samples.
"""

from __future__ import annotations

import torch

from diffprune.models.adapters.text_conditioned import TextConditionedAdapter


class ClassConditionalAdapter(TextConditionedAdapter):
    def encode(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        from diffprune.models.generation import class_ids

        return {"class_labels": torch.tensor(class_ids(self.pipeline, prompts), device=self.device)}

    def encode_negative(self) -> dict[str, torch.Tensor]:
        """DiTPipeline's guidance pairs every label with class 1000, the null class of its label dropout."""
        return {"class_labels": torch.tensor([1000], device=self.device)}

    def predict(self, model, noisy, timesteps, conditioning) -> torch.Tensor:
        timesteps = timesteps.expand(noisy.shape[0]) if timesteps.ndim < 1 or len(timesteps) == 1 else timesteps
        prediction = model(noisy, timestep=timesteps, class_labels=conditioning["class_labels"]).sample
        if prediction.shape[1] == 2 * noisy.shape[1]:  # learnt variance: the pipeline keeps the first half
            prediction = prediction[:, : noisy.shape[1]]
        return prediction
