"""Synthetic "tones" audio set: ten classes of short melodies, rendered to 32x32 mel images.

Why: the toolkit must prune an audio diffusion model offline, so the data is generated here
instead of downloaded. Each class is a fixed pitch pattern (2-4 notes); every clip varies
transposition, tempo, onset, timbre (harmonics), loudness and noise, so a model has to learn the
class shape rather than memorise clips. Images come from diffusers' own `Mel`, so they match what
`AudioDiffusionPipeline` turns back into audio.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import Mel

SAMPLE_RATE = 8000
N_FFT = 512
HOP = 128
RES = 32  # mel image is RES x RES: RES*HOP - 1 = 4095 samples, about 0.51 s

# Pitches in Hz for each class's notes (played in order, equal durations).
MELODIES = [
    [262, 392],
    [392, 262],
    [262, 330, 392],
    [392, 330, 262],
    [523, 523, 784],
    [330, 659, 330, 659],
    [880, 660, 440, 330],
    [440, 880],
    [1047, 784, 1047],
    [294, 587, 1175],
]
NUM_CLASSES = len(MELODIES)


def make_mel() -> Mel:
    """The Mel converter shared by training and the pipeline (32x32 at 8 kHz)."""
    return Mel(x_res=RES, y_res=RES, sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP)


def render_clip(cls: int, rng: np.random.Generator) -> np.ndarray:
    """One randomised audio clip (float32, RES*HOP samples) of melody `cls`."""
    n = RES * HOP
    t = np.arange(n) / SAMPLE_RATE
    notes = MELODIES[cls]
    transpose = 2.0 ** (rng.uniform(-1.0, 1.0) / 12.0)
    start = rng.uniform(0.0, 0.06) * n
    length = (n - start) * rng.uniform(0.85, 1.0)
    dur = length / len(notes)
    harmonics = rng.uniform(0.0, 0.5, size=3) * np.array([1.0, 0.6, 0.3])
    audio = np.zeros(n)
    for i, f in enumerate(notes):
        a, b = int(start + i * dur), int(start + (i + 1) * dur * rng.uniform(0.85, 1.0))
        seg = np.arange(b - a)
        env = np.minimum(1.0, seg / 40.0) * np.exp(-seg / (dur * rng.uniform(0.5, 1.5)))
        freq = f * transpose
        tone = np.sin(2 * np.pi * freq * t[a:b] + rng.uniform(0, 2 * np.pi))
        for k, h in enumerate(harmonics):
            tone += h * np.sin(2 * np.pi * freq * (k + 2) * t[a:b])
        audio[a:b] += env * tone * rng.uniform(0.6, 1.0)
    audio += rng.normal(0, rng.uniform(0.001, 0.01), n)
    return (audio / (np.abs(audio).max() + 1e-8) * 0.8).astype(np.float32)


def tones_dataset(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 1, 32, 32] in [0, 1], labels [N]) made from freshly rendered clips."""
    rng = np.random.default_rng(seed)
    mel = make_mel()
    images, labels = [], []
    for cls in range(NUM_CLASSES):
        for _ in range(per_class):
            mel.load_audio(raw_audio=render_clip(cls, rng))
            images.append(np.asarray(mel.audio_slice_to_image(0), dtype=np.float32) / 255.0)
            labels.append(cls)
    return torch.from_numpy(np.stack(images)).unsqueeze(1), torch.tensor(labels)
