"""CLAP score: agreement of generated audio with its prompt, the text-to-audio counterpart of CLIP score.

torchmetrics has no CLAP metric, so this is a torchmetrics Metric with CLIPScore's formula (100 * cosine of
the projected text and audio embeddings, averaged, floored at 0) over transformers' ClapModel. Audio is
resampled to the rate the CLAP feature extractor was trained at (48 kHz for LAION's checkpoints).
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from diffprune.errors import DiffpruneError, first_line
from diffprune.evaluation.metrics.clip_score import features_tensor, resolve_pretrained_location
from diffprune.models.generation import mono

DEFAULT_CLAP_MODEL = "laion/clap-htsat-unfused"
UPDATE_CHUNK = 16


def load_clap(model_name_or_path: str):
    """(ClapModel, ClapProcessor) from a hub id or a local folder."""
    # deferred: transformers takes seconds to import, and only CLAP scoring needs it
    from transformers import ClapModel, ClapProcessor

    location = resolve_pretrained_location(model_name_or_path)
    try:
        return ClapModel.from_pretrained(location).eval(), ClapProcessor.from_pretrained(location)
    except (OSError, ValueError) as error:
        raise DiffpruneError(
            f"could not load CLAP model {model_name_or_path!r} ({first_line(error)}); "
            "pass `clap_model` with a folder holding a ClapModel and ClapProcessor"
        ) from error


class CLAPScore(Metric):
    """Mean CLAP score of audio clips against their prompts (update with clips, their rate and prompts)."""

    higher_is_better = True
    is_differentiable = False
    full_state_update = False

    def __init__(self, model, processor, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.processor = processor
        self.add_state("score", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("n_samples", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, audios: list[np.ndarray], sample_rate: int, prompts: list[str]) -> None:
        if len(audios) != len(prompts):
            raise DiffpruneError(f"CLAP score needs one prompt per clip (got {len(prompts)} for {len(audios)})")
        target_rate = int(self.processor.feature_extractor.sampling_rate)
        clips = [resample(mono(audio), sample_rate, target_rate) for audio in audios]  # CLAP hears one channel
        inputs = self.processor(
            text=list(prompts), audio=clips, sampling_rate=target_rate, return_tensors="pt", padding=True
        ).to(self.device)
        text = features_tensor(
            self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        )
        audio_kwargs = {key: inputs[key] for key in ("input_features", "is_longer") if key in inputs}
        audio = features_tensor(self.model.get_audio_features(**audio_kwargs))
        cosine = torch.nn.functional.cosine_similarity(text.float(), audio.float(), dim=-1)
        self.score += 100 * cosine.sum()
        self.n_samples += len(clips)

    def compute(self) -> torch.Tensor:
        return torch.clamp(self.score / self.n_samples, min=0.0)


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate:
        return audio
    # deferred: librosa is optional (the audio extra)
    import librosa

    return librosa.resample(audio, orig_sr=source_rate, target_sr=target_rate)


class ClapScorer:
    """Mean CLAP score of clips against prompts. Build once (loads the model), call many times."""

    def __init__(self, model_name_or_path: str = DEFAULT_CLAP_MODEL, model=None, processor=None, device="cpu"):
        if model is None or processor is None:
            model, processor = load_clap(model_name_or_path)
        self.description = model_name_or_path
        self.metric = CLAPScore(model.to(device), processor).to(device)

    def __call__(self, audios: list[np.ndarray], sample_rate: int, prompts: list[str]) -> float:
        self.metric.reset()
        with torch.no_grad():
            for start in range(0, len(audios), UPDATE_CHUNK):
                stop = start + UPDATE_CHUNK
                self.metric.update(audios[start:stop], sample_rate, prompts[start:stop])
            return float(self.metric.compute())
