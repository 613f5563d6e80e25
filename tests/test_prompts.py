import pytest

from diffprune.errors import DiffpruneError
from diffprune.models.prompts import default_prompts, read_prompts


def test_prompt_files(tmp_path):
    prompt_file = tmp_path / "prompts.txt"
    prompt_file.write_text("# a comment\na seven\n\n  a two  \n")
    assert read_prompts(prompt_file) == ["a seven", "a two"]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DiffpruneError, match="holds no prompts"):
        read_prompts(tmp_path / "empty.txt")
    with pytest.raises(DiffpruneError, match="does not exist"):
        read_prompts(tmp_path / "missing.txt")


def test_defaults_by_pipeline(ddpm, sd, tmp_path):
    assert len(default_prompts(sd, None)) >= 64, "the general calibration list"
    assert all(
        "digit" in p
        or any(w in p for w in ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))
        or any(c.isdigit() for c in p)
        for p in default_prompts(sd, "digits-t2i")
    )
    assert default_prompts(ddpm) is None
    sd.save_pretrained(tmp_path / "sd")
    (tmp_path / "sd" / "calibration_prompts.txt").write_text("a 1\na 2\n")
    from diffusers import DiffusionPipeline

    assert default_prompts(DiffusionPipeline.from_pretrained(tmp_path / "sd")) == ["a 1", "a 2"]
