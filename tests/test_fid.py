"""FrechetDistance: torchmetrics' FID in InceptionV3 or a domain feature space, with one-line errors offline."""

import urllib.error

import pytest
import torch

from diffprune.errors import DiffpruneError
from diffprune.evaluation.metrics import fid
from diffprune.evaluation.metrics.feature_networks import FeatureClassifier
from diffprune.evaluation.metrics.fid import FrechetDistance, default_feature_network


@pytest.fixture(scope="module")
def distance():
    torch.manual_seed(0)
    return FrechetDistance(FeatureClassifier())


def test_identical_sets_are_at_zero_and_different_sets_are_not(distance):
    images = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8)
    assert distance(images, images) == pytest.approx(0.0, abs=1e-9)
    darker = (images.float() * 0.3).to(torch.uint8)
    assert distance(images, darker) > 1e-4


def test_two_samples_are_enough_and_one_is_refused(distance):
    images = torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8)  # RGB, other size: the network adapts
    assert distance(images, images.flip(0)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(DiffpruneError, match="at least 2 images"):
        distance(images[:1], images)


def test_default_feature_network_matches_bundled_models():
    assert default_feature_network("digits-ddpm") == "digits-features"
    assert default_feature_network("digits-t2i") == "digits-features"
    assert default_feature_network("tones-audio") == "tones-features"
    assert default_feature_network(None, "org/model", "digits-t2i") == "digits-features"
    assert default_feature_network("org/model", None) == "inception"


def test_bundled_feature_network_by_short_name():
    assert FrechetDistance("digits-features").description == "digits-features"


def test_unknown_feature_network_is_a_one_line_error(tmp_path):
    with pytest.raises(DiffpruneError, match="unknown FID feature network"):
        FrechetDistance("no-such-network")
    with pytest.raises(DiffpruneError, match="could not load a FeatureClassifier"):
        FrechetDistance(str(tmp_path))


def test_inception_without_torch_fidelity_names_the_offline_options(monkeypatch):
    def missing(*args, **kwargs):
        raise ModuleNotFoundError("FrechetInceptionDistance metric requires that `Torch-fidelity` is installed.")

    monkeypatch.setattr(fid, "_fid_class", lambda: missing)
    with pytest.raises(DiffpruneError, match="torch-fidelity") as error:
        FrechetDistance("inception")
    assert "`fid_weights`" in str(error.value) and "`fid_features`" in str(error.value)


def test_inception_weights_that_cannot_be_downloaded_name_the_offline_options(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(fid, "_fid_class", lambda: offline)
    with pytest.raises(DiffpruneError, match="weights could not be loaded") as error:
        FrechetDistance("inception")
    assert "`fid_weights`" in str(error.value) and "\n" not in str(error.value)


def test_inception_here_is_either_available_or_a_one_line_error():
    """Without torch-fidelity or its weights (this test environment) the real path ends in the same one-line
    error; where they load, the metric measures: zero for a set against itself, more for a darker one."""
    try:
        distance = FrechetDistance("inception")
    except DiffpruneError as error:
        assert ("`fid_weights`" in str(error) or "torch-fidelity" in str(error)) and "\n" not in str(error)
        return
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    same = distance(images, images)  # zero up to the matrix square root's error on 4 samples
    assert abs(same) < 1.0 and distance(images, (images.float() * 0.3).to(torch.uint8)) > same + 1.0
