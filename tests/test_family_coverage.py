"""Every denoiser of diffusers' image and audio pipelines (found from diffusers itself, denoiser_classes.py, so a
class a new diffusers adds shows up here) is either supported by a registered family, with a contract fixture
for a diffusion transformer, or refused in one line that says why: none is cut silently wrong."""

import pytest
import torch
from denoiser_classes import image_and_audio_denoisers
from diffusers import DreamLiteUNetModel, PriorTransformer, UNet2DConditionModel
from tiny_families import FAMILY_FIXTURES

import diffprune
from diffprune.errors import DiffpruneError
from diffprune.families import family_of, find_family, refused_classes
from diffprune.structure.gates import gated, removal_values
from diffprune.structure.surgery import remove_units

DENOISERS = image_and_audio_denoisers()


def test_the_enumeration_finds_image_and_audio_denoisers_and_leaves_out_video_and_non_images():
    names = {cls.__name__ for cls in DENOISERS}
    assert {
        "UNet2DConditionModel",  # Stable Diffusion
        "FluxTransformer2DModel",
        "ZImageTransformer2DModel",
        "StableAudioDiTModel",  # audio
        "Ideogram4Transformer2DModel",
        "PriorTransformer",  # unCLIP's prior, in an image pipeline
    } <= names
    # video-only models, and pipelines that return embeddings, depth, text or proteins
    assert not names & {
        "WanTransformer3DModel",
        "LTX2VideoTransformer3DModel",
        "UNetMotionModel",
        "CogVideoXTransformer3DModel",
        "WuerstchenPrior",
        "RFD4ProteinaTransformer",
    }
    # a 3D class used by an image pipeline is in: Cosmos 2's text-to-image
    assert "CosmosTransformer3DModel" in names


@pytest.mark.parametrize("cls", sorted(DENOISERS, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_every_image_and_audio_denoiser_is_supported_or_refused_in_one_line(cls):
    family = find_family(cls)
    if family is not None:
        if family.is_transformer:  # the family contract runs on it
            assert family.name in FAMILY_FIXTURES, f"{cls.__name__}: family {family.name} has no contract fixture"
        return
    with pytest.raises(DiffpruneError) as raised:
        family_of(cls)
    message = str(raised.value)
    assert "\n" not in message
    # a reason, not the generic refusal
    assert message.startswith(f"{cls.__name__} cannot be pruned by diffprune: "), message


def test_every_refusal_names_a_denoiser_of_an_image_or_audio_pipeline():
    """A refusal for a misspelt or renamed class would never be said."""
    assert set(refused_classes()) <= {cls.__name__ for cls in DENOISERS}


def test_a_refused_denoiser_is_refused_where_a_user_meets_it():
    prior = PriorTransformer(
        num_attention_heads=2, attention_head_dim=4, num_layers=1, embedding_dim=8, num_embeddings=2
    )
    with pytest.raises(DiffpruneError, match=r"^PriorTransformer cannot be pruned by diffprune: it denoises CLIP"):
        diffprune.find_units(prior)


def test_dreamlite_belongs_to_the_unet_family_by_ancestry_and_its_cut_equals_the_gated_model(tmp_path):
    """DreamLite's UNet subclasses UNet2DConditionModel, so the UNet family's structural rules find its units: its
    depthwise-separable resnets and grouped-query attention follow them, and a cut equals the gated model."""
    torch.manual_seed(0)
    model = DreamLiteUNetModel(
        sample_size=8,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        cross_attention_dim=16,
        attention_head_dim=8,
        norm_num_groups=8,
        num_kv_heads=1,
        ff_mult=2,
    ).eval()
    assert family_of(model) is family_of(UNet2DConditionModel)
    inputs = diffprune.families.example_inputs(model, 2, 5, None, torch.Generator().manual_seed(1))
    units = diffprune.find_units(model, inputs)
    names = []
    for unit in units[::2]:  # every other unit, none inside another chosen one
        if not any(unit.name.startswith(f"{n}.") or n.startswith(f"{unit.name}.") for n in names):
            names.append(unit.name)
    assert {"resnet", "attention", "transformer_block"} <= {u.kind for u in units if u.name in names}
    with torch.no_grad():
        original = model(**inputs).sample
        with gated(model, units, removal_values(units, names)):
            expected = model(**inputs).sample
        cut = remove_units(model, names, units)
        assert not torch.allclose(original, expected)
        torch.testing.assert_close(cut(**inputs).sample, expected, rtol=0, atol=1e-6)
        cut.save_pretrained(tmp_path)
        reloaded = type(cut).from_pretrained(tmp_path).eval()
        torch.testing.assert_close(reloaded(**inputs).sample, expected, rtol=0, atol=1e-6)


def test_the_readme_support_table_lists_every_family_with_its_classes():
    from pathlib import Path

    from diffprune.families import all_families

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| ")}
    for cls, family in all_families().items():
        if family.is_transformer:
            assert family.name in rows, f"README's support table has no row for {family.name}"
            assert cls.__name__ in rows[family.name], cls.__name__
