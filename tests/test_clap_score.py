"""CLAP score (text-audio agreement) as a torchmetrics Metric over transformers' ClapModel, on a tiny model."""

import numpy as np
import pytest
from tiny_evaluation_models import tiny_clap

from diffprune.errors import DiffpruneError
from diffprune.evaluation.metrics.clap_score import ClapScorer, load_clap


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
    assert "`clap_model`" in str(error.value)
