"""User training images (with captions) instead of data-free samples, for loss-based criteria and distillation."""

import numpy as np
import pytest
import torch
from PIL import Image

import diffprune
from diffprune.errors import DiffpruneError
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.models.components import with_unet
from diffprune.models.training_data import encode_images, image_files, read_captions
from diffprune.recovery.distillation import DistillSettings, distill


def _write_images(folder, count, size, mode):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        shape = (size, size) if mode == "L" else (size, size, 3)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(folder / f"{index:02d}.png")
    return folder


def test_pixel_and_latent_pipelines_encode_to_their_unet_input(sd, ddpm, tmp_path):
    folder = _write_images(tmp_path / "gray", 3, 20, "L")
    latents = encode_images(ddpm, image_files(folder))
    assert latents.shape == (3, 1, 16, 16) and latents.min() >= -1 and latents.max() <= 1
    folder = _write_images(tmp_path / "rgb", 2, 40, "RGB")
    assert encode_images(sd, image_files(folder)).shape == (2, 4, 16, 16)


def test_captions_come_from_captions_txt_or_sidecars(tmp_path):
    folder = _write_images(tmp_path / "images", 2, 8, "RGB")
    with pytest.raises(DiffpruneError, match="need captions"):
        read_captions(image_files(folder))
    (folder / "captions.txt").write_text("a 1\n")
    with pytest.raises(DiffpruneError, match="1 captions for 2 images"):
        read_captions(image_files(folder))
    (folder / "captions.txt").write_text("a 1\na 2\n")
    assert read_captions(image_files(folder)) == ["a 1", "a 2"]


def test_distillation_and_criteria_train_on_the_user_images(ddpm, tmp_path):
    teacher = ddpm
    folder = _write_images(tmp_path / "images", 4, 16, "L")
    settings = CalibrationSettings(num_samples=4, num_inference_steps=2, images=str(folder))
    assert torch.equal(adapter_for(teacher, settings).user_latents(), encode_images(teacher, image_files(folder)))
    student = with_unet(teacher, diffprune.remove_units(teacher.unet, ["mid_block"]))
    _, history = distill(student, teacher, DistillSettings(steps=2, batch_size=2), settings, show_progress=False)
    assert len(history) == 2
    result = diffprune.prune(
        teacher,
        diffprune.criteria.Taylor(num_batches=1, batch_size=2),
        diffprune.Budget(num_units=1),
        calibration=settings,
        show_progress=False,
    )
    assert len(result.removed) == 1


def test_missing_or_empty_folder_is_a_user_error(tmp_path):
    with pytest.raises(DiffpruneError):
        image_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DiffpruneError, match="holds no images"):
        image_files(tmp_path / "empty")


def test_audio_pipelines_refuse_training_images_in_one_line(tmp_path):
    from tiny_evaluation_models import tiny_audio_diffusion_pipeline

    folder = _write_images(tmp_path / "images", 2, 8, "L")
    settings = CalibrationSettings(num_samples=2, images=str(folder), show_progress=False)
    with pytest.raises(DiffpruneError, match="training images cannot train audio-diffusion pipelines"):
        adapter_for(tiny_audio_diffusion_pipeline(), settings)
