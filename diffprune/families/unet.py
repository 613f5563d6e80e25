"""UNet denoisers: UNet2DConditionModel (Stable Diffusion 1.x/2.x, SDXL, AudioLDM, Kandinsky, IF, ...),
UNet2DModel (DDPM, DDIM, LDM, audio diffusion) and AudioLDM2's UNet.

Their units are found by the structural rules of structure/units.py (residual blocks in module lists, the mid
block, sub-layers of transformer blocks), so the family declares no stacks; it declares how units are named,
one call as the pipeline makes it (the extra conditioning each config asks for), and how a text pipeline
conditions and calls the UNet for the training losses. Every unit is cut in place (the Pruned* class); the
export to a stock config, where one expresses the cut, is structure/export.py's.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel, UNet2DModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel

from diffprune.errors import DiffpruneError
from diffprune.families.registry import CALIBRATION, LOSSES, Family, register

DEFAULT_TEXT_LENGTH = 77  # Stable Diffusion's tokenizer length; pipelines pass their own.
# Config values that make forward() read added_cond_kwargs["image_embeds"] (Kandinsky 2.1 / 2.2 / 2.2 ControlNet).
IMAGE_ADDITIONS = ("image", "image_hint", "text_image")
IMAGE_PROJECTIONS = ("image_proj", "text_image_proj")
# "image_hint" UNets encode a 3-channel hint at 8x the latent size into this many channels (diffusers'
# ImageHintTimeEmbedding) and concatenate it to the sample, so conv_in's in_channels counts them too.
HINT_CHANNELS, HINT_SCALE = 4, 8


# Block types without attention that a stock config can name instead, when a cut removed all of a block's attention.
ATTENTION_FREE = {
    "CrossAttnDownBlock2D": "DownBlock2D",
    "AttnDownBlock2D": "DownBlock2D",
    "SimpleCrossAttnDownBlock2D": "ResnetDownsampleBlock2D",
    "CrossAttnUpBlock2D": "UpBlock2D",
    "AttnUpBlock2D": "UpBlock2D",
    "SimpleCrossAttnUpBlock2D": "ResnetUpsampleBlock2D",
}


def needs_image_embeddings(config) -> bool:
    return (
        config.get("addition_embed_type") in IMAGE_ADDITIONS or config.get("encoder_hid_dim_type") in IMAGE_PROJECTIONS
    )


def sample_shape(unet, batch_size: int = 1) -> tuple[int, ...]:
    config = unet.config
    size = config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    channels = config.in_channels - (HINT_CHANNELS if config.get("addition_embed_type") == "image_hint" else 0)
    return (batch_size, channels, height, width)


def context_dims(cross_attention_dim) -> list[int]:
    """Widths of the encoder states a UNet attends to. cross_attention_dim may be an int, a per-block tuple, or
    (AudioLDM2) per-block lists like [None, 768, 1024]: None is self-attention, then one width per encoder."""
    if not isinstance(cross_attention_dim, (list, tuple)):
        return [cross_attention_dim]
    first_block = cross_attention_dim[0]
    if isinstance(first_block, (list, tuple)):
        return [dim for dim in first_block if dim is not None]
    return [first_block]


def attends_to_encoder(cross_attention_dim) -> bool:
    """AudioLDM gives each block its own width and no encoder states: its "cross" attention attends to itself."""
    if isinstance(cross_attention_dim, (list, tuple)) and all(isinstance(d, int) for d in cross_attention_dim):
        return len(set(cross_attention_dim)) == 1
    return True


def _cpu_inputs(unet, batch_size: int, text_length: int | None, generator: torch.Generator | None) -> dict:
    config = unet.config
    text_length = text_length or DEFAULT_TEXT_LENGTH
    randn = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    inputs = {"sample": randn(*sample_shape(unet, batch_size)), "timestep": torch.full((batch_size,), 10)}
    if isinstance(unet, (UNet2DConditionModel, AudioLDM2UNet2DConditionModel)) or hasattr(
        config, "cross_attention_dim"
    ):
        dims = context_dims(config.cross_attention_dim)
        if config.get("encoder_hid_dim"):
            dims = [config.encoder_hid_dim]
        # Kandinsky 2.2 ("image_proj") builds its encoder states from image_embeds and is called with None.
        if attends_to_encoder(config.cross_attention_dim) and config.get("encoder_hid_dim_type") != "image_proj":
            inputs["encoder_hidden_states"] = randn(batch_size, text_length, dims[0])
        else:
            inputs["encoder_hidden_states"] = None
        if len(dims) > 1:
            inputs["encoder_hidden_states_1"] = randn(batch_size, text_length, dims[1])
        _add_extra_conditioning(unet, inputs, batch_size, randn)
    elif config.get("num_class_embeds") is not None or config.get("class_embed_type") is not None:
        inputs["class_labels"] = torch.zeros(batch_size, dtype=torch.long)
    return inputs


def _add_extra_conditioning(unet, inputs: dict, batch_size: int, randn) -> None:
    config = unet.config
    addition = config.get("addition_embed_type")
    added = {}
    if addition == "text_time":  # SDXL: pooled text embeddings plus six size/crop numbers
        time_dim = config.addition_time_embed_dim
        text_dim = config.projection_class_embeddings_input_dim - 6 * time_dim
        added = {"text_embeds": randn(batch_size, text_dim), "time_ids": randn(batch_size, 6)}
    elif addition == "text_image":  # Kandinsky 2.1: pooled text embeddings of the cross-attention width
        added["text_embeds"] = randn(batch_size, context_dims(config.cross_attention_dim)[0])
    # "text" (DeepFloyd IF) pools the encoder states itself and needs nothing more.
    if needs_image_embeddings(config):
        added["image_embeds"] = randn(batch_size, _image_embed_dim(config))
    if addition == "image_hint":
        _, _, height, width = inputs["sample"].shape
        added["hint"] = randn(batch_size, 3, HINT_SCALE * height, HINT_SCALE * width)
    if added:
        inputs["added_cond_kwargs"] = added
    class_embed = config.get("class_embed_type")
    if config.get("num_class_embeds") is not None and class_embed is None:
        inputs["class_labels"] = torch.zeros(batch_size, dtype=torch.long)
    elif class_embed == "timestep":
        inputs["class_labels"] = torch.full((batch_size,), 5)
    elif class_embed in ("projection", "simple_projection"):
        inputs["class_labels"] = randn(batch_size, config.projection_class_embeddings_input_dim)
    elif class_embed == "identity":  # added to the time embedding as is
        inputs["class_labels"] = randn(batch_size, _time_embed_dim(config))
    if config.get("time_cond_proj_dim") is not None:
        inputs["timestep_cond"] = randn(batch_size, config.time_cond_proj_dim)


def _image_embed_dim(config) -> int:
    """diffusers sizes the Kandinsky 2.1 modules ("text_image*") by cross_attention_dim, the 2.2 ones by
    encoder_hid_dim; a config mixing the two with different widths cannot be called at all."""
    cross = context_dims(config.cross_attention_dim)[0]
    kinds = (config.get("addition_embed_type"), config.get("encoder_hid_dim_type"))
    widths = {
        cross if kind.startswith("text_image") else config.encoder_hid_dim
        for kind in kinds
        if kind in IMAGE_ADDITIONS + IMAGE_PROJECTIONS
    }
    if len(widths) > 1:
        raise DiffpruneError(
            f"this UNet's config asks for image_embeds of two widths ({sorted(widths)}); diffusers cannot run it either"
        )
    return widths.pop()


def _time_embed_dim(config) -> int:
    """The width diffusers gives the time embedding (UNet2DConditionModel._set_time_proj)."""
    per_channel = 2 if config.get("time_embedding_type") == "fourier" else 4
    return config.get("time_embedding_dim") or config.block_out_channels[0] * per_channel


@register(UNet2DConditionModel, UNet2DModel, AudioLDM2UNet2DConditionModel)
class UNet(Family):
    name = "unet"
    is_transformer = False

    def support_problem(self, operation, model=None, pipeline=None):
        if model is not None and needs_image_embeddings(model.config) and operation in (CALIBRATION, LOSSES):
            return (
                "it needs image_embeds from a prior pipeline (Kandinsky 2.x), which prune and evaluate cannot supply "
                "yet: pass its UNet alone (diffprune.find_units / diffprune.remove_units(pipeline.unet, units))"
            )
        if operation == LOSSES and pipeline is not None and getattr(pipeline, "text_encoder_2", None) is not None:
            return "the losses do not support SDXL's two text encoders yet; use criterion ld-pruner"
        return None

    def block_kind(self, list_name: str | None, module: torch.nn.Module) -> str:
        """The kind of a residual unit found in a module list named `list_name` (None: the mid block)."""
        if list_name is None:
            return "mid_block"
        if list_name == "resnets":
            return "resnet"
        if list_name == "transformer_blocks" or isinstance(module, BasicTransformerBlock):
            return "transformer_block"
        return "attention"

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        return _cpu_inputs(model, batch_size, text_length, generator)

    def stock_config(self, model):
        """Expressible removals: the whole mid block (mid_block_type = None), and every attention block of a down
        or up block (the block's attention-free type); anything else (single resnets, sub-layers, some of a
        block's attentions) has no stock config."""
        if isinstance(model, AudioLDM2UNet2DConditionModel):
            return (
                "AudioLDM2's UNet has no stock class that diffusers loads by its config alone; keep the Pruned* class"
            )
        removed = set((model.config.get("removed_units") or {}).keys())
        config = {k: v for k, v in dict(model.config).items() if k != "removed_units" and not k.startswith("_")}
        handled = set()
        if "mid_block" in removed:
            config["mid_block_type"] = None
            handled.add("mid_block")
        for direction in ("down", "up"):
            key = f"{direction}_block_types"
            types = list(config[key])
            for index, block_type in enumerate(types):
                attentions = getattr(getattr(model, f"{direction}_blocks")[index], "attentions", None)
                if not attentions:
                    continue
                names = {f"{direction}_blocks.{index}.attentions.{j}" for j in range(len(attentions))}
                if names <= removed and block_type in ATTENTION_FREE:
                    types[index] = ATTENTION_FREE[block_type]
                    handled |= names
            config[key] = types
        blocking = sorted(removed - handled)
        if blocking:
            return (
                f"these removed units have no stock diffusers config: {', '.join(blocking[:4])}"
                + (" ..." if len(blocking) > 4 else "")
                + "; keep the diffprune class (it reloads with diffusers when diffprune is installed)"
            )
        return config

    def encode(self, pipeline, prompts, device):
        embeddings = pipeline.encode_prompt(prompts, device, 1, do_classifier_free_guidance=False)[0]
        return {"encoder_hidden_states": embeddings}

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        return model(noisy, timesteps, **conditioning).sample
