"""The family registry: everything diffprune must know about a denoiser class, declared once per family.

A family is one denoiser architecture: a diffusers model class, found for any instance by the class's ancestry
(so a Pruned* cut, or a folder's own copy of one, belongs to its stock class's family). Its module in this
folder declares, as a `Family` subclass registered with `@register(DiffusersClass, ...)`:

  * `stacks`: its block lists (`Stack`): the attribute, the config key that counts the blocks, the unit kind,
    how a block's call carries the image and text streams, and how a block is cut (DEPTH: dropped from the
    list and the count lowered, a stock config; REPLACE: swapped for a bypass in place, the Pruned* class, for
    stacks whose blocks are addressed by position elsewhere);
  * `fixed_blocks(model)`: blocks (or branches inside blocks) other modules read, never units;
  * `edit_depth_cut(cut, removed)`: per-block config and weights a depth cut must edit beyond the counts;
  * `context_branches`, `branch_gates`, `branch_kind`: how branches inside blocks are named and gated;
  * `example_inputs(model, ...)`: one denoiser call as the pipeline makes it (unit finding, MACs, latency);
  * `encode(pipeline, prompts, device)` / `encode_negative(pipeline, device)` / `predict(pipeline, model, noisy,
    timesteps, conditioning)`: how the pipeline conditions (with and without the prompt) and calls the
    denoiser, for the training-time losses, the guided objective and distillation;
  * `unsupported`: {operation: why not}, the one place a refusal is written.

The rest of diffprune asks `family_of(model)`; no other module tests class names. Families import torch,
diffusers and the package root's shared modules (errors, devices, tensors), nothing else of diffprune.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import ClassVar

import torch
from diffusers.models.attention_processor import Attention

from diffprune.errors import DiffpruneError

# How a block's call carries the streams. Two-stream blocks take `hidden_states` (image tokens) and
# `encoder_hidden_states` (text tokens) and return both, in one of two orders.
ONE_STREAM = "one_stream"  # hidden states in, hidden states out (a tensor, or a container whose first entry it is)
TEXT_IMAGE = "text_image"  # returns (encoder_hidden_states, hidden_states): SD3, FLUX, Qwen-Image
IMAGE_TEXT = "image_text"  # returns (hidden_states, encoder_hidden_states): HiDream, CogView4
STREAM_LAYOUTS = (ONE_STREAM, TEXT_IMAGE, IMAGE_TEXT)

# How a stack's blocks are cut.
DEPTH = "depth"  # dropped from the list, the rest renumbered, the count lowered: the stock class loads the cut
REPLACE = "replace"  # replaced in place by a bypass (the Pruned* subclass): blocks addressed by position elsewhere

# What a family can be asked to do; `unsupported` maps some of them to the reason they cannot be done.
UNITS = "units"  # find units, score them with ld-pruner / magnitude / random, cut them
BRANCH_CUTS = "branch cuts"  # cut attention / feed-forward branches inside blocks
CALIBRATION = "calibration"  # sample through the pipeline (ld-pruner, evaluation)
LOSSES = "losses"  # training-time losses: loss-based criteria and distillation
OPERATIONS = (UNITS, BRANCH_CUTS, CALIBRATION, LOSSES)

DEFAULT_TEXT_LENGTH = 77  # example inputs' text length where no pipeline gives its own (CLIP's)


@dataclass(frozen=True)
class Stack:
    """One list of blocks of a diffusion transformer."""

    attribute: str  # e.g. "transformer_blocks"
    count_key: str | None  # the config key that counts its blocks ("num_layers"); None when none does alone
    kind: str = "transformer_block"  # the unit kind of its blocks
    streams: str = ONE_STREAM  # STREAM_LAYOUTS: how a block's call carries the image and text streams
    cut: str | None = DEPTH  # DEPTH, REPLACE, or None: blocks are not units (their branches still are)
    branch_parent: str = ""  # where a block's branches live, below the block ("block" for a wrapper module)
    # False: its blocks hold no branch units (FLUX.2's single block: its one branch is the block's whole update)
    branches: bool = True

    def __post_init__(self):
        if self.streams not in STREAM_LAYOUTS:
            raise ValueError(f"unknown stream layout {self.streams!r}")
        if self.cut == DEPTH and self.count_key is None:
            raise ValueError(f"{self.attribute}: a depth cut needs the config key that counts the blocks")


class Family:
    """What one denoiser architecture declares (see the module docstring). Subclass, set the class attributes,
    override the methods that differ, and register with `@register(DiffusersClass)`."""

    name: ClassVar[str] = ""  # short name, used in reports and the README's support table
    is_transformer: ClassVar[bool] = True  # False: units are found by the UNet's structural rules
    task: ClassVar[str | None] = None  # the pipeline task when components alone cannot tell (audio transformers)
    stacks: ClassVar[tuple[Stack, ...]] = ()
    # Leaf names of branches that run on the text stream (their kind is context_feed_forward).
    context_branches: ClassVar[tuple[str, ...]] = ()
    # {branch leaf: sibling module whose output is the branch's contribution}: where a branch's output passes
    # through a scale-invariant norm before the residual (norm(g * f(x)) = norm(f(x))), the gate sits after it.
    branch_gates: ClassVar[dict[str, str]] = {}
    # How the pipeline's classifier-free guidance calls the denoiser: "batched" ([negative, positive] in one
    # call, doubling the batch), "separate" (one call each), "embedded" (guidance is an input, one call), "none".
    guidance: ClassVar[str] = "batched"
    # Whether the pipeline's call pads every prompt to its `max_sequence_length` (T5-style encoders), which is
    # then the text length of every denoiser call (costs and timing use it; see text_length).
    pads_text_to_max_sequence_length: ClassVar[bool] = False
    unsupported: ClassVar[dict[str, str]] = {}  # {operation: why it cannot be done for this family}

    # -- what diffprune may do ------------------------------------------------------------------------------
    def support_problem(self, operation: str, model=None, pipeline=None) -> str | None:
        """Why `operation` cannot be done on this model (or pipeline), or None when it can."""
        return self.unsupported.get(operation)

    # -- structure ------------------------------------------------------------------------------------------
    def fixed_blocks(self, model) -> set[str]:
        """Blocks, or branches inside blocks, that stay whatever is cut (other modules read them)."""
        return set()

    def edit_depth_cut(self, cut, removed: dict[str, list[int]]) -> None:
        """Edit per-block config and weights of `cut` (a copy whose stacks already lost the blocks `removed`,
        {stack attribute: original indices}, and whose counts are lowered) beyond what the stacks say."""

    def stock_config(self, model) -> dict | str:
        """The stock config that builds a Pruned* cut's architecture, or why none can. A diffusion transformer's
        depth cut is its stock class already; what a cut removes in place (branches inside blocks, blocks
        addressed by position) no stock config can say."""
        removed = sorted((model.config.get("removed_units") or {}).keys())
        if not removed:
            return {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
        return (
            f"these removed units have no stock diffusers config: {', '.join(removed[:4])}"
            + (" ..." if len(removed) > 4 else "")
            + "; keep the Pruned* class (load it with trust_remote_code=True or diffprune.load_pipeline)"
        )

    def branch_kind(self, leaf: str, module: torch.nn.Module, streams: int) -> str:
        """The unit kind of a branch inside a block: `leaf` is its attribute name, `streams` how many tensors it
        returns."""
        if streams > 1:
            return "joint_attention"
        if leaf in self.context_branches:
            return "context_feed_forward"
        if getattr(module, "is_cross_attention", False):
            return "cross_attention"
        attention_types = (Attention, *_attention_mixins())
        return "self_attention" if isinstance(module, attention_types) else "feed_forward"

    def output_blocks(self, model) -> dict[str, str]:
        """{feature name: module path} whose outputs distillation matches between teacher and student: the last
        block of each stack (what the next stage reads), since a depth cut renumbers the blocks in between."""
        return {
            f"{stack.attribute}[-1]": f"{stack.attribute}.{len(getattr(model, stack.attribute)) - 1}"
            for stack in self.stacks
        }

    # -- class-conditional families --------------------------------------------------------------------------
    def num_classes(self, model) -> int | None:
        """How many classes the denoiser embeds, for class-conditional families."""
        return None

    def class_ids(self, pipeline, labels) -> list[int]:
        """Class ids for class labels (names the pipeline knows, or integer ids)."""
        raise DiffpruneError(f"a {self.name} pipeline takes no class labels")

    # -- calling the denoiser -------------------------------------------------------------------------------
    def guidance_scale(self, pipeline, requested: float | None = None) -> float | None:
        """The classifier-free guidance scale the pipeline's call applies: the requested one, else its call's
        default (None where the call has none)."""
        if requested is not None:
            return float(requested)
        default = call_defaults(pipeline, ("guidance_scale",)).get("guidance_scale")
        return float(default) if isinstance(default, (int, float)) else None

    def guidance_arguments(self, pipeline, guidance_scale: float | None) -> dict:
        """Keyword arguments of the pipeline's call for this classifier-free guidance scale (None: the call's
        own default)."""
        return {} if guidance_scale is None else {"guidance_scale": guidance_scale}

    def text_length(self, pipeline) -> int | None:
        """The text sequence length of the pipeline's denoiser calls (cost and timing inputs use it): the call's
        `max_sequence_length` default where the family pads to it, else the tokenizer's padded length (None
        when there is none). Families that join several encoders' tokens say so."""
        if self.pads_text_to_max_sequence_length:
            length = call_defaults(pipeline, ("max_sequence_length",)).get("max_sequence_length")
            if isinstance(length, int):
                return length
        tokenizer = getattr(pipeline, "tokenizer", None)
        length = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
        return length if isinstance(length, int) and 0 < length < 10_000 else None

    def example_inputs(self, model, batch_size: int, text_length: int | None, latent_size: int | None, generator):
        """Keyword arguments for one call, random values of the right shapes on the CPU (placed by the caller)."""
        raise NotImplementedError(f"{type(self).__name__} declares no example inputs")

    def encode(self, pipeline, prompts: list[str], device) -> dict[str, torch.Tensor]:
        """The denoiser's conditioning for `prompts` as the pipeline's call makes it, without guidance."""
        raise NotImplementedError(f"{type(self).__name__} declares no prompt encoding")

    def encode_negative(self, pipeline, device) -> dict[str, torch.Tensor] | None:
        """The conditioning of the unconditional half of the pipeline's classifier-free guidance, one row: by
        default the empty negative prompt its call encodes when none is given, as `encode` encodes a prompt;
        None where guidance has no unconditional call (guidance-distilled or unguided families)."""
        if self.guidance in ("embedded", "none"):
            return None
        return self.encode(pipeline, [""], device)

    def predict(self, pipeline, model, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: dict):
        """`model`'s prediction for `noisy` at `timesteps` (the training noise's convention, TrainingNoise), called
        as the pipeline's denoising loop calls it, in the latents' layout. `model` may be a cut or a wrapped copy
        of the pipeline's denoiser; flags are read off the pipeline's own."""
        raise NotImplementedError(f"{type(self).__name__} declares no denoiser call")


def call_defaults(pipeline, names) -> dict:
    """The pipeline call's own defaults for these parameters (those it has)."""
    parameters = inspect.signature(pipeline.__call__).parameters
    return {name: parameters[name].default for name in names if name in parameters}


def _attention_mixins() -> tuple[type, ...]:
    """Attention classes outside attention_processor.Attention (FLUX's and newer ones share this mixin)."""
    try:
        from diffusers.models.attention import AttentionModuleMixin
    except ImportError:  # older diffusers
        return ()
    return (AttentionModuleMixin,)


_FAMILIES: dict[type, Family] = {}
_REFUSED: dict[str, str] = {}  # {class name: why diffprune cannot cut it}


def register(*classes):
    """Class decorator: the family describes these denoiser classes (None entries, classes an older diffusers
    lacks, are skipped)."""

    def decorator(family_class: type[Family]) -> type[Family]:
        family = family_class()
        for cls in classes:
            if cls is not None:
                _FAMILIES[cls] = family
        return family_class

    return decorator


def refuse(class_name: str, reason: str) -> None:
    """Record why a denoiser class cannot be cut (said in one line whenever it is asked for)."""
    _REFUSED[class_name] = reason


def lookup(model_or_class) -> Family | None:
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    for ancestor in cls.__mro__:
        if ancestor in _FAMILIES:
            return _FAMILIES[ancestor]
    return None


def refusal(model_or_class) -> str:
    """The one-line error for a denoiser no family describes."""
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    for ancestor in cls.__mro__:
        if ancestor.__name__ in _REFUSED:
            return f"{cls.__name__} cannot be pruned by diffprune: {_REFUSED[ancestor.__name__]}"
    supported = ", ".join(cls.__name__ for cls in _FAMILIES)
    return (
        f"{cls.__name__} is not a supported diffusers denoiser (supported: {supported}); "
        "docs/methods.md 'Adding a family' says how to add one"
    )


def registered() -> dict[type, Family]:
    return dict(_FAMILIES)


def refused() -> dict[str, str]:
    return dict(_REFUSED)


def require(family: Family, operation: str, model=None, pipeline=None) -> None:
    problem = family.support_problem(operation, model, pipeline)
    if problem:
        name = type(model).__name__ if model is not None else family.name
        raise DiffpruneError(f"{operation} of a {name}: {problem}")
