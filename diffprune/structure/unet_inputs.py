"""Example inputs for one UNet forward, built from the model's config alone.

Unit discovery (shape probing), MAC counting, latency and the tests all need "one forward of this UNet at its
sample size"; this is the one place that knows which extra conditioning each diffusers UNet family expects.
Values are drawn on the CPU (a seed gives the same inputs on every device), then placed on the model's own
device and dtype (devices.place), so the inputs fit a CUDA or bf16 model as well as a CPU fp32 one.
"""

from __future__ import annotations

import torch

from diffprune.devices import Placement, place
from diffprune.errors import DiffpruneError

DEFAULT_TEXT_LENGTH = 77  # Stable Diffusion's tokenizer length; pipelines pass their own.
# Config values that make forward() read added_cond_kwargs["image_embeds"] (Kandinsky 2.1 / 2.2 / 2.2 ControlNet).
IMAGE_ADDITIONS = ("image", "image_hint", "text_image")
IMAGE_PROJECTIONS = ("image_proj", "text_image_proj")
# "image_hint" UNets encode a 3-channel hint at 8x the latent size into this many channels (diffusers'
# ImageHintTimeEmbedding) and concatenate it to the sample, so conv_in's in_channels counts them too.
HINT_CHANNELS, HINT_SCALE = 4, 8


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


def example_inputs(
    unet,
    batch_size: int = 1,
    text_length: int | None = None,
    generator: torch.Generator | None = None,
    placement: Placement | None = None,
) -> dict:
    """Keyword arguments for `unet(**inputs)` with random values of the right shapes, on the UNet's device and
    in its dtype (integer tensors on its device); `placement` puts them elsewhere."""
    return place(_cpu_inputs(unet, batch_size, text_length, generator), placement or unet)


def _cpu_inputs(unet, batch_size: int, text_length: int | None, generator: torch.Generator | None) -> dict:
    config = unet.config
    text_length = text_length or DEFAULT_TEXT_LENGTH
    randn = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    inputs = {"sample": randn(*sample_shape(unet, batch_size)), "timestep": torch.full((batch_size,), 10)}
    class_name = type(unet).__name__
    if "Condition" in class_name or hasattr(config, "cross_attention_dim"):
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
