"""The one writer of saved pruned folders (diffprune/models/saved_folder.py): what each folder holds, the report
carried forward from the folder a cut came from, and a folder that is complete or absent."""

import json

import pytest

import diffprune
from diffprune.models import saved_folder
from diffprune.models.saved_folder import pruning_report_of, save_pruned_folder
from diffprune.outputs import WORK_FOLDER
from diffprune.structure.denoiser import denoiser_of


@pytest.fixture(scope="module")
def pruned(_shared_ddpm):
    return diffprune.prune(_shared_ddpm[0], "magnitude", diffprune.Budget(num_units=1), show_progress=False)


def test_work_folder_name_is_hidden():
    assert WORK_FOLDER.startswith(".")


def test_a_folder_made_from_a_saved_one_carries_its_report_forward_with_its_own(pruned, tmp_path):
    source = pruned.save(tmp_path / "pruned")
    target = tmp_path / "distilled"
    (target / WORK_FOLDER).mkdir(parents=True)  # a run's resume state: allowed, and gone once the folder is saved
    history = {"student": str(source), "teacher": "original", "history": [{"step": 1, "loss": 0.5}]}
    carried = pruning_report_of(source, denoiser_of(pruned.pipeline))
    save_pruned_folder(target, pruned.pipeline, carried, history)
    assert carried == json.loads((source / "pruning_report.json").read_text())
    assert json.loads((target / "pruning_report.json").read_text()) == carried
    assert json.loads((target / "distillation_report.json").read_text()) == history
    assert (target / "README.md").read_text() == (source / "README.md").read_text()
    assert (target / "scores.png").stat().st_size > 0
    assert not (target / WORK_FOLDER).exists()
    assert diffprune.load_pipeline(str(target)).unet.config.removed_units.keys() == set(pruned.removed)


def test_a_pipeline_with_nothing_removed_is_saved_without_a_report(ddpm, tmp_path):
    assert pruning_report_of(tmp_path / "no-such-folder", ddpm.unet) is None
    folder = save_pruned_folder(tmp_path / "plain", ddpm, None)
    assert (folder / "model_index.json").is_file()
    assert not (folder / "pruning_report.json").exists() and not (folder / "README.md").exists()


def test_a_failure_while_writing_leaves_no_folder(pruned, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(saved_folder, "write_card", fail)
    with pytest.raises(KeyboardInterrupt):
        save_pruned_folder(tmp_path / "out", pruned.pipeline, pruned.report)
    assert list(tmp_path.iterdir()) == []
