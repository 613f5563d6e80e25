"""A folder of real samples as an image batch comparable with a model's generations (for FID against data).

Images are brought to the generated images' size and mode, so the feature network sees both sets the same
way. For audio-diffusion pipelines a folder of WAV files works too: each clip becomes a mel image through the
pipeline's own Mel, exactly as its generations are rendered.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from diffprune.errors import DiffpruneError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


def check_real_images_folder(folder: str | Path) -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DiffpruneError(
            f"`real_images` {folder} is not a folder; pass a folder of images (or WAV files for audio)"
        )
    return folder


def load_real_images(folder: str | Path, like, pipeline=None, limit: int | None = None) -> list[Image.Image]:
    """Real samples as PIL images with the size and mode of the PIL image `like` (sorted by file name)."""
    folder = check_real_images_folder(folder)
    files = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES)
    mel = getattr(pipeline, "mel", None)
    images = []
    for path in files[:limit]:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            with Image.open(path) as image:
                images.append(image.convert(like.mode).resize(like.size, Image.Resampling.BICUBIC))
        elif mel is not None:
            mel.load_audio(audio_file=str(path))
            images.append(mel.audio_slice_to_image(0).convert(like.mode).resize(like.size, Image.Resampling.BICUBIC))
    if len(images) < 2:
        kinds = "images or audio clips" if mel is not None else "images"
        raise DiffpruneError(f"`real_images` {folder} holds {len(images)} usable {kinds}; FID needs at least 2")
    return images
