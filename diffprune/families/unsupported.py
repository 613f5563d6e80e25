"""Denoisers diffprune refuses on purpose, each with the reason a cut cannot be exact or has not been verified
(said in one line).

Classes no family describes and that are not listed here get the generic refusal (not a supported denoiser).
tests/test_family_coverage.py finds every denoiser of diffusers' image and audio pipelines and checks that each
is registered or listed here.
"""

from __future__ import annotations

from diffprune.families.registry import refuse

VERIFIED_ONLY = "diffprune cuts only families whose cut it tests against the original with those blocks bypassed"


def _not_declared(structure: str) -> str:
    """A structure read and found cuttable, whose denoiser call (example inputs) no family declares yet."""
    return f"{structure}, but its denoiser call is not declared yet; {VERIFIED_ONLY}"


def _unverified_unet(name: str) -> str:
    return (
        f"{name} is not a block layout diffprune's UNet rules are verified on (UNet2DModel, UNet2DConditionModel, "
        f"AudioLDM 2's UNet); {VERIFIED_ONLY}"
    )


# Cannot be cut exactly, or not a noise-predicting denoiser of images or audio.
refuse(
    "HunyuanDiT2DModel",
    "its long skips pair block i of the first half with block N-1-i of the second, so removing a block re-pairs "
    "every skip after it",
)
refuse(
    "UniDiffuserModel",
    "its U-ViT long skips pair in-block i with out-block N-1-i, so removing a block re-pairs every skip after it",
)
refuse(
    "UVit2DModel",
    "aMUSEd's U-ViT predicts masked VQ tokens (logits over a codebook), not noise; diffprune's criteria and "
    "calibration measure noise predictions",
)
refuse(
    "Transformer2DModel",
    "as VQ-Diffusion's denoiser it predicts log-probabilities of discrete VQ tokens, not noise; diffprune's criteria "
    "and calibration measure noise predictions",
)
refuse(
    "PriorTransformer",
    "it denoises CLIP image embeddings (unCLIP, Kandinsky) or Shap-E latents, not an image; prune the pipeline's "
    "image decoder instead",
)

# Read and found cuttable by depth, but no family declares their call yet.
refuse(
    "QwenImage21Transformer2DModel",
    _not_declared(
        "its blocks share one modulation and a key/value cache sized from num_layers (a depth cut would be exact)"
    ),
)
refuse("PRXTransformer2DModel", _not_declared("its one stack of blocks reads only shared inputs"))
refuse(
    "OmniGenTransformer2DModel",
    _not_declared("its one stack of decoder blocks over interleaved text and image tokens reads only shared inputs"),
)
refuse("LuminaNextDiT2DModel", _not_declared("its one stack of blocks reads only shared inputs"))
refuse(
    "CosmosTransformer3DModel",
    _not_declared("its blocks read only shared inputs (each adds the same learnt position embedding)"),
)
refuse(
    "Kandinsky5Transformer3DModel",
    _not_declared("its text stack and visual stack read only shared inputs"),
)
refuse("JoyImageEditTransformer3DModel", _not_declared("its stack of double-stream blocks reads only shared inputs"))
refuse(
    "JoyImageEditPlusTransformer3DModel", _not_declared("its stack of double-stream blocks reads only shared inputs")
)
refuse("StableAudio3DiTModel", _not_declared("its one stack of blocks reads only shared inputs"))
refuse(
    "LongCatAudioDiTTransformer",
    _not_declared("its one stack of blocks reads only shared inputs (its long skip spans the whole stack)"),
)
refuse("T5FilmDecoder", _not_declared("its stack of FiLM decoder layers reads only shared inputs"))
refuse(
    "BriaFibo2Transformer2DModel",
    _not_declared(
        "text is injected into the blocks that injection_layer_ids names by position, one text bundle each, so "
        "its blocks must be cut in place"
    ),
)

# UNet-like denoisers outside the layouts the UNet family is tested on.
refuse("StableCascadeUNet", _unverified_unet("Stable Cascade's UNet (Würstchen v3 stages B and C)"))
refuse("WuerstchenDiffNeXt", _unverified_unet("Würstchen's DiffNeXt decoder"))
refuse("Kandinsky3UNet", _unverified_unet("Kandinsky 3's UNet"))
refuse("UNet1DModel", _unverified_unet("a 1D UNet (Dance Diffusion)"))
refuse("UNetFlatConditionModel", _unverified_unet("Versatile Diffusion's text UNet (flat linear blocks)"))
refuse(
    "UNetControlNetXSModel",
    _unverified_unet("a UNet fused with its ControlNet-XS adapter (the two exchange features at every block)"),
)
