"""CLAP score (text-audio agreement) as a torchmetrics Metric over transformers' ClapModel, on a tiny model."""

import numpy as np
import pytest
import torch
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

from diffprune.errors import DiffpruneError
from diffprune.metrics.clap_score import ClapScorer, load_clap


def tiny_clap():
    """A random ClapModel built offline: a byte-level vocabulary of letters, 16 mel bins at 8 kHz."""
    torch.manual_seed(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "\u0120"] + letters + ["\u0120" + letter for letter in letters]
    tokenizer = RobertaTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[], model_max_length=16)
    config = ClapConfig(
        text_config=dict(vocab_size=len(tokens), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=20, projection_dim=8),
        audio_config=dict(window_size=4, num_mel_bins=16, spec_size=32, patch_size=2, patch_stride=2, hidden_size=16,
                          patch_embeds_hidden_size=8, projection_dim=8, depths=[1, 1], num_attention_heads=[2, 2],
                          num_hidden_layers=2),
        projection_dim=8,
    )
    extractor = ClapFeatureExtractor(feature_size=16, sampling_rate=8000, hop_length=160, max_length_s=1,
                                     fft_window_size=256, frequency_max=4000, truncation="rand_trunc")
    return ClapModel(config).eval(), ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer)


def test_score_is_clip_formula_on_clap_embeddings_after_resampling():
    model, processor = tiny_clap()
    scorer = ClapScorer("tiny", model=model, processor=processor)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(16000).astype(np.float32) * 0.1 for _ in range(3)]  # 1 s at 16 kHz
    prompts = ["a dog", "rain", "birds"]
    value = scorer(clips, 16000, prompts)
    raw_mean = float(scorer.metric.score) / 3
    assert np.isfinite(raw_mean) and -100 <= raw_mean <= 100
    assert value == pytest.approx(max(raw_mean, 0.0), abs=1e-4)
    with pytest.raises(DiffpruneError, match="one prompt per clip"):
        scorer(clips, 16000, prompts[:2])


def test_loading_failures_are_one_line_errors(tmp_path):
    with pytest.raises(DiffpruneError, match="could not load CLAP model") as error:
        load_clap(str(tmp_path))
    assert "--clap-model" in str(error.value)
