"""Removing units from diffusers denoisers (UNets, and sub-layers of diffusion transformers), and the Pruned*
classes whose config records the removed units.

This file imports only the standard library, torch and diffusers, on purpose: every saved cut carries a verbatim
copy of it as `unet/diffprune.py` (or `transformer/diffprune.py`), so `DiffusionPipeline.from_pretrained(folder,
trust_remote_code=True)` and `AutoModel.from_pretrained(folder, subfolder="unet", trust_remote_code=True)` rebuild
the cut on a machine without diffprune. diffprune runs this same file (structure/surgery.py and models/saved_cuts.py import from
it), so the shipped code cannot drift from the library's.

A removed residual block becomes `Bypass` (returns its input in the container its callers expect), a removed
two-stream block `TwoStreamBypass` (returns both streams unchanged); a removed sub-layer becomes `ZeroBranch`
(contributes nothing to its parent's residual), or `ZeroStreams` for a joint attention (SD3, FLUX) that returns
one output per stream. None has parameters.
`Pruned<Class>(**config, removed_units={name: gate_form})` (made for any diffusers model class on first use, see
`pruned_class`) builds the original architecture and applies the removal, so a cut is described by data (its
config) and reloads through `from_pretrained`.
"""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import diffusers
from torch import nn

# Gate forms: how a unit's call carries its streams, and so how it is gated (structure/gates.py) and what stands
# in for it once removed. A cut's config records {unit path: gate form}, so these strings are saved data.
RESIDUAL_BLOCK = "residual"  # x -> f(x) of the same shape; removed: returns x
RESIDUAL_BRANCH = "branch"  # its parent adds f(x) to a residual; removed: contributes zeros
TWO_STREAM_BLOCK = "two_stream"  # (hidden, encoder) -> (encoder', hidden'): SD3, FLUX; removed: returns its inputs
TWO_STREAM_BLOCK_IMAGE_FIRST = "two_stream_image_first"  # (hidden, encoder) -> (hidden', encoder'): HiDream, CogView4
TWO_STREAM_BRANCH = "two_stream_branch"  # a joint attention returning one output per stream; removed: zeros
# model_index.json names the library "diffprune", and diffusers looks for a component's code in
# `<component>/<library>.py`; so this is also the file name a saved cut carries.
MODULE_NAME = "diffprune"
CODE_FILE = f"{MODULE_NAME}.py"
LOAD_HINT = (
    "load it with diffusers.AutoModel.from_pretrained(FOLDER, subfolder='unet' or 'transformer', "
    "trust_remote_code=True), "
    "DiffusionPipeline.from_pretrained(FOLDER, trust_remote_code=True) or, with diffprune installed, "
    "diffprune.load_pipeline(FOLDER)"
)
# A stock class reading a cut's config.json would ignore `removed_units` and build the FULL model with the
# removed units "newly initialized" (diffusers only warns). The one config entry every diffusers model validates
# before building anything, with the value quoted in the error, is `quantization_config.quant_method`; so a cut
# writes its loading instructions there, and the Pruned* classes drop the entry again when they read the config.
STOCK_CLASS_STOP = "quantization_config"
STOCK_CLASS_MESSAGE = f"none (this denoiser was cut by diffprune: its config lists removed_units; {LOAD_HINT})"


class Bypass(nn.Module):
    """Stands in for a removed residual block: the output is the block's main input."""

    def __init__(self, returns_container: bool):
        super().__init__()
        # Modules with a `return_dict` argument (Transformer2DModel) return a container; plain blocks a tensor.
        self.returns_container = returns_container

    def forward(self, hidden_states, *args, **kwargs):
        if not self.returns_container:
            return hidden_states
        if not kwargs.get("return_dict", True):
            return (hidden_states,)
        # written into saved cuts' own code, which imports only what it uses
        from diffusers.models.modeling_outputs import Transformer2DModelOutput

        return Transformer2DModelOutput(sample=hidden_states)


class TwoStreamBypass(nn.Module):
    """Stands in for a removed two-stream block: returns its `hidden_states` and `encoder_hidden_states` unchanged,
    in the order the block returned them. `parameters` are the removed block's parameter names, so positional
    calls are read the way the block read them."""

    def __init__(self, parameters: list[str], image_first: bool):
        super().__init__()
        self.parameters_of_block, self.image_first = list(parameters), image_first

    def forward(self, *args, **kwargs):
        named = {**dict(zip(self.parameters_of_block, args, strict=False)), **kwargs}  # args fill the first parameters
        hidden, encoder = named["hidden_states"], named["encoder_hidden_states"]
        return (hidden, encoder) if self.image_first else (encoder, hidden)


class ZeroBranch(nn.Module):
    """Stands in for a removed sub-layer (attention or feed-forward) whose output its parent adds to a residual."""

    def forward(self, hidden_states, *args, **kwargs):
        # An expanded zero costs no memory and broadcasts like the real output would.
        return hidden_states.new_zeros(()).expand(hidden_states.shape)


class ZeroStreams(nn.Module):
    """Stands in for a removed joint attention (SD3, FLUX, CogView4, HiDream): it returns (image output, text
    output), and each stream adds its output to its own residual; both become zeros shaped like the stream they
    stand for. `parameters` are the removed attention's parameter names: the image stream is its first one, the
    text stream the one named `*encoder_hidden_states`, so positional calls are read the way it read them
    (HiDream's passes a mask between the two)."""

    def __init__(self, parameters: list[str]):
        super().__init__()
        self.parameters_of_branch = list(parameters)
        self.text_parameter = next(name for name in parameters if name.endswith("encoder_hidden_states"))

    def forward(self, *args, **kwargs):
        named = {**dict(zip(self.parameters_of_branch, args, strict=False)), **kwargs}
        streams = (named[self.parameters_of_branch[0]], named[self.text_parameter])
        return tuple(s.new_zeros(()).expand(s.shape) for s in streams)


def _set_module(root: nn.Module, name: str, replacement: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    if isinstance(parent, nn.ModuleList):
        parent[int(leaf)] = replacement
    else:
        setattr(parent, leaf, replacement)


def replacement_for(module: nn.Module, gate_form: str) -> nn.Module:
    if gate_form == RESIDUAL_BRANCH:
        return ZeroBranch()
    parameters = inspect.signature(module.forward).parameters
    if gate_form == TWO_STREAM_BRANCH:
        return ZeroStreams(list(parameters))
    if gate_form in (TWO_STREAM_BLOCK, TWO_STREAM_BLOCK_IMAGE_FIRST):
        return TwoStreamBypass(list(parameters), image_first=gate_form == TWO_STREAM_BLOCK_IMAGE_FIRST)
    return Bypass(returns_container="return_dict" in parameters)


def apply_removal(denoiser: nn.Module, removed: dict[str, str]) -> None:
    """Replace units in place, given {name: gate form}; needs no forward, so it also works on the meta device
    that from_pretrained builds models on."""
    for name, gate_form in removed.items():
        _set_module(denoiser, name, replacement_for(denoiser.get_submodule(name), gate_form))


class _CutModelFiles:
    """What a cut reads and writes beyond its base class: its own code beside config.json (and an `auto_map`
    entry, so AutoModel finds it), and the entry that stops stock classes."""

    # diffusers writes {"AutoModel": "<last part of __module__>.<class name>"} into config.json for this.
    _auto_class = "AutoModel"

    @classmethod
    def load_config(cls, *args, **kwargs):
        loaded = super().load_config(*args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        stop = config.get(STOCK_CLASS_STOP)
        if isinstance(stop, dict) and stop.get("quant_method") == STOCK_CLASS_MESSAGE:
            del config[STOCK_CLASS_STOP]
        # Where to find the code, not part of the architecture; read, it would only warn "not expected".
        config.pop("auto_map", None)
        return loaded

    def save_config(self, save_directory, **kwargs):
        super().save_config(save_directory, **kwargs)
        folder = Path(save_directory)
        shutil.copyfile(__file__, folder / CODE_FILE)
        if self.config.get("removed_units"):
            path = folder / self.config_name
            config = json.loads(path.read_text())
            config[STOCK_CLASS_STOP] = {"quant_method": STOCK_CLASS_MESSAGE}
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _make_pruned_class(base: type) -> type:
    base_init = base.__init__
    signature = inspect.signature(base_init)
    parameters = [p for p in signature.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    parameters.append(inspect.Parameter("removed_units", inspect.Parameter.KEYWORD_ONLY, default=None))

    def __init__(self, *args, removed_units=None, **kwargs):
        base_init(self, *args, **kwargs)
        removed_units = dict(removed_units or {})  # {module path: gate form}
        self.register_to_config(removed_units=removed_units)
        apply_removal(self, removed_units)

    # diffusers keeps only the config keys that `__init__`'s signature names: the base's plus `removed_units`.
    __init__.__signature__ = signature.replace(parameters=parameters)
    name = f"Pruned{base.__name__}"
    # model_index.json records ["diffprune", name] (diffusers takes the library from __module__), both when
    # diffprune defines the class and when diffusers runs this file as a folder's code.
    namespace = {"__init__": __init__, "__module__": MODULE_NAME, "__qualname__": name}
    return type(name, (_CutModelFiles, base), namespace)


PRUNED_PREFIX = "Pruned"
_PRUNED: dict[type, type] = {}


def pruned_class(base: type) -> type:
    """The Pruned* subclass of a diffusers model class (made once per class, so isinstance checks hold)."""
    if base not in _PRUNED:
        _PRUNED[base] = _make_pruned_class(base)
    return _PRUNED[base]


def base_class_named(name: str) -> type | None:
    """The diffusers model class of that name: exported by diffusers, or by one of its pipelines (AudioLDM2's UNet)."""
    found = getattr(diffusers, name, None)
    if found is None:
        # deferred: diffusers.pipelines loads every pipeline module; only a class outside diffusers' top level needs it
        import diffusers.pipelines as pipelines

        found = getattr(pipelines, name, None)
        if found is None and name.startswith("AudioLDM2"):
            from diffusers.pipelines.audioldm2 import modeling_audioldm2

            found = getattr(modeling_audioldm2, name, None)
    return found if isinstance(found, type) and issubclass(found, diffusers.ModelMixin) else None


def stock_class_of(cls: type) -> type | None:
    """The diffusers model class a (possibly Pruned*, possibly a folder's copy of a) model class derives from."""
    return next((ancestor for ancestor in cls.__mro__ if base_class_named(ancestor.__name__) is ancestor), None)


def __getattr__(name: str):
    """`Pruned<DiffusersClass>` for any diffusers model class: what a saved folder's model_index.json names, looked
    up by diffusers in this file (the folder's copy) or by diffprune here."""
    if name.startswith(PRUNED_PREFIX):
        base = base_class_named(name[len(PRUNED_PREFIX) :])
        if base is not None:
            return pruned_class(base)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
