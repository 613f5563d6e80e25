import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from untouched import assert_untouched, snapshot  # noqa: E402  (after the sys.path line that finds it)

# Under `make test` two pytest-xdist workers share the 2 cores: one torch thread each (more would oversubscribe).
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need a CUDA GPU; where torch sees none they are skipped, not failed."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# Shared tiny pipelines and saved folders, built once per session (per xdist worker). They are for tests that only
# read them: generating, scoring, evaluating, or pruning through the library (which leaves its input untouched).
# Each test that takes one checks on teardown that its weights, devices, dtypes and modes are as they were, so a
# test that mutates a shared pipeline fails by name instead of making later tests flaky. A test that changes its
# pipeline builds its own (tiny_models.tiny_ddpm_pipeline() and the like).


@pytest.fixture(scope="session")
def _shared_ddpm():
    from tiny_models import tiny_ddpm_pipeline

    pipeline = tiny_ddpm_pipeline()
    return pipeline, snapshot(pipeline)


@pytest.fixture(scope="session")
def _shared_sd():
    from tiny_models import tiny_sd_pipeline

    pipeline = tiny_sd_pipeline()
    return pipeline, snapshot(pipeline)


@pytest.fixture(scope="session")
def _shared_ddpm_cut(_shared_ddpm):
    from diffusers import DDPMPipeline

    from diffprune import remove_units

    dense = _shared_ddpm[0]
    pipeline = DDPMPipeline(unet=remove_units(dense.unet, ["mid_block"]), scheduler=dense.scheduler)
    return pipeline, snapshot(pipeline)


def _read_only(shared):
    pipeline, before = shared
    yield pipeline
    assert_untouched(before, pipeline)


@pytest.fixture
def ddpm(_shared_ddpm):
    """The tiny DDPM pipeline (tiny_models.tiny_ddpm_pipeline()), shared: read it, do not change it."""
    yield from _read_only(_shared_ddpm)


@pytest.fixture
def sd(_shared_sd):
    """The tiny Stable Diffusion pipeline (tiny_models.tiny_sd_pipeline()), shared: read it, do not change it."""
    yield from _read_only(_shared_sd)


@pytest.fixture
def ddpm_cut(_shared_ddpm_cut):
    """`ddpm` with its mid block removed (same scheduler object), shared: read it, do not change it."""
    yield from _read_only(_shared_ddpm_cut)


@pytest.fixture(scope="session")
def ddpm_folder(_shared_ddpm, tmp_path_factory):
    """`ddpm` saved as a pipeline folder (as `save_pretrained` writes it)."""
    folder = tmp_path_factory.mktemp("ddpm")
    _shared_ddpm[0].save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def ddpm_cut_folder(_shared_ddpm_cut, tmp_path_factory):
    """`ddpm_cut` saved as a pipeline folder (the cut with its code, as diffprune saves one)."""
    folder = tmp_path_factory.mktemp("ddpm-cut")
    _shared_ddpm_cut[0].save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def sd_folder(_shared_sd, tmp_path_factory):
    """`sd` saved as a pipeline folder."""
    folder = tmp_path_factory.mktemp("models") / "tiny-sd"
    _shared_sd[0].save_pretrained(folder)
    return folder
