"""Every addition_embed_type, class_embed_type and encoder_hid_dim_type diffusers' UNet2DConditionModel accepts:
example inputs fit, units are found, a cut equals the gated model, costs drop, and a saved cut reloads exactly.

The Kandinsky 2.2 decoder config (kandinsky22_decoder_unet) is held out: no other test file uses it.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

import diffprune
from diffprune.errors import DiffpruneError
from diffprune.families import example_inputs
from diffprune.structure.costs import count_macs
from diffprune.structure.gates import gated, removal_values
from diffprune.structure.units import find_units


def _unet(**overrides):
    """A tiny SD-shaped UNet (time embedding width 64) with one kind of extra conditioning."""
    torch.manual_seed(0)
    config = dict(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=24,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    return UNet2DConditionModel(**{**config, **overrides}).eval()


def kandinsky22_decoder_unet():
    """kandinsky-2-2-decoder's unet config at toy size: image embeddings feed both the time embedding
    ("image") and the cross-attention states ("image_proj"); learned variance doubles out_channels."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=2,
        sample_size=16,
        in_channels=4,
        out_channels=8,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        cross_attention_dim=32,
        attention_head_dim=8,
        addition_embed_type="image",
        encoder_hid_dim=20,
        encoder_hid_dim_type="image_proj",
        class_embed_type=None,
        resnet_time_scale_shift="scale_shift",
        norm_num_groups=8,
    ).eval()


CONFIGS = {
    "addition-text": lambda: _unet(addition_embed_type="text", encoder_hid_dim=20, addition_embed_type_num_heads=2),
    "addition-text_time": lambda: _unet(
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=80
    ),
    "addition-image_hint": lambda: _unet(  # Kandinsky 2.2 ControlNet: the 4 hint channels join the 4 latent ones
        addition_embed_type="image_hint", encoder_hid_dim=20, encoder_hid_dim_type="image_proj", in_channels=8
    ),
    "addition-text_image": lambda: _unet(  # Kandinsky 2.1
        addition_embed_type="text_image", encoder_hid_dim=20, encoder_hid_dim_type="text_image_proj"
    ),
    "kandinsky22-decoder": kandinsky22_decoder_unet,
    "encoder-text_proj": lambda: _unet(encoder_hid_dim=20, encoder_hid_dim_type="text_proj"),
    "class-num_class_embeds": lambda: _unet(num_class_embeds=10),
    "class-timestep": lambda: _unet(class_embed_type="timestep"),
    "class-timestep-concat": lambda: _unet(class_embed_type="timestep", class_embeddings_concat=True),
    "class-identity": lambda: _unet(class_embed_type="identity"),
    "class-projection": lambda: _unet(class_embed_type="projection", projection_class_embeddings_input_dim=12),
    "class-simple_projection": lambda: _unet(
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=12
    ),
}


def _inputs(unet):
    return example_inputs(unet, 2, text_length=6, generator=torch.Generator().manual_seed(1))


def _resnet_and_attention(units):
    """A resnet (it reads the time embedding the extra conditioning feeds) and an attention (it reads the
    encoder states the image or text projection builds)."""
    outer = [u for u in units if not any(o.contains(u) for o in units)]
    return [next(u for u in outer if u.kind == kind).name for kind in ("resnet", "attention")]


@pytest.mark.parametrize("name", CONFIGS)
def test_cut_equals_gated_model_costs_less_and_reloads_exactly(name, tmp_path):
    unet = CONFIGS[name]()
    units = find_units(unet)
    names = _resnet_and_attention(units)
    assert len(names) == 2
    inputs = _inputs(unet)
    with torch.no_grad():
        with gated(unet, units, removal_values(units, names)):
            expected = unet(**inputs).sample
        cut = diffprune.remove_units(unet, names)
        actual = cut(**inputs).sample
    assert (actual - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert count_macs(cut) < count_macs(unet)
    cut.save_pretrained(tmp_path)
    reloaded = type(cut).from_pretrained(tmp_path)
    assert reloaded.config.removed_units == cut.config.removed_units
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).sample, actual)


def test_kandinsky22_inputs_match_what_the_decoder_pipeline_passes():
    """KandinskyV22Pipeline calls its UNet with encoder_hidden_states=None and added_cond_kwargs image_embeds."""
    inputs = _inputs(kandinsky22_decoder_unet())
    assert inputs["encoder_hidden_states"] is None
    assert inputs["added_cond_kwargs"]["image_embeds"].shape == (2, 20)


def _tiny_kandinsky22_pipeline():
    torch.manual_seed(0)
    movq = VQModel(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
        up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        num_vq_embeddings=12,
        norm_num_groups=8,
        vq_embed_dim=4,
        sample_size=32,
    )
    return KandinskyV22Pipeline(unet=kandinsky22_decoder_unet(), scheduler=DDPMScheduler(), movq=movq)


def test_kandinsky22_decoder_pipeline_is_refused_with_what_to_pass():
    pipeline = _tiny_kandinsky22_pipeline()
    with pytest.raises(DiffpruneError, match="needs image_embeds .*pass its UNet alone") as refused:
        diffprune.prune(pipeline, budget=diffprune.Budget(num_units=1), show_progress=False)
    assert "\n" not in str(refused.value)
    with pytest.raises(DiffpruneError, match="needs image_embeds"):
        diffprune.evaluate(pipeline, metrics=["clip"], num_samples=1)
