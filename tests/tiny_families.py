"""One fixture per registered diffusion-transformer family, for the family contract (test_families.py).

A fixture is a tiny denoiser built offline with the stock diffusers class and the inputs its pipeline hands it,
the branch kinds its blocks have, and, where the family has a pipeline, a tiny one built as it ships, the
guidance scale that switches classifier-free guidance off, and how the timestep that pipeline passes maps to
diffprune's convention (sigma x 1000 for flow models; FluxPipeline passes sigma itself). A new family adds its
fixture here; test_families.py fails for a registered family without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tiny_chroma import tiny_chroma, tiny_chroma_pipeline
from tiny_cogview4 import tiny_cogview4, tiny_cogview4_pipeline
from tiny_flux2 import tiny_flux2, tiny_flux2_klein_pipeline
from tiny_hidream import tiny_hidream, tiny_hidream_pipeline
from tiny_lumina2 import tiny_lumina2, tiny_lumina2_pipeline
from tiny_other_families import (
    tiny_ace_step,
    tiny_auraflow,
    tiny_bria,
    tiny_bria_fibo,
    tiny_cogview3plus,
    tiny_ernie_image,
    tiny_glm_image,
    tiny_hunyuanimage,
    tiny_ideogram4,
    tiny_krea2,
    tiny_longcat_image,
    tiny_nucleusmoe_image,
    tiny_ovis_image,
    tiny_z_image,
)
from tiny_qwenimage import tiny_qwenimage, tiny_qwenimage_pipeline
from tiny_stable_audio import tiny_stable_audio, tiny_stable_audio_pipeline
from tiny_transformers import (
    tiny_dit,
    tiny_dit_pipeline,
    tiny_flux,
    tiny_flux_pipeline,
    tiny_pixart,
    tiny_pixart_alpha_pipeline,
    tiny_pixart_sigma_pipeline,
    tiny_sana,
    tiny_sana_pipeline,
    tiny_sd3,
    tiny_sd3_pipeline,
)


def _same(value):
    return value


def _negated(prediction):
    return -prediction


@dataclass(frozen=True)
class PipelineFixture:
    build: object  # () -> pipeline
    guidance_scale: float | None = 1.0  # 1: guidance off (the adapter predicts unguided); None: the call's default
    # The timestep the pipeline passes -> diffprune's convention (the training noise's: integer t, or sigma x 1000).
    to_diffprune_timestep: Callable = _same
    # The denoiser's output -> diffprune's convention (the training noise's target: for flow models, noise - image;
    # Lumina 2 and HiDream predict image - noise, which their pipelines negate).
    to_diffprune_prediction: Callable = _same
    prompts: tuple = ("a 1", "b 2")  # prompts (or class labels) the pipeline is called with


@dataclass(frozen=True)
class FamilyFixture:
    model: object  # () -> (model, inputs(generator) -> dict)
    branch_kinds: frozenset  # kinds of the branch units inside its blocks
    pipelines: dict = field(default_factory=dict)  # {name: PipelineFixture}


_MMDIT_BRANCHES = frozenset({"joint_attention", "self_attention", "feed_forward", "context_feed_forward"})
_SINGLE_STREAM_BRANCHES = frozenset({"self_attention", "feed_forward"})

FAMILY_FIXTURES = {
    "pixart": FamilyFixture(
        tiny_pixart,
        frozenset({"self_attention", "cross_attention", "feed_forward"}),
        {
            "pixart-sigma": PipelineFixture(tiny_pixart_sigma_pipeline),
            # PixArt-alpha 1024 takes resolution and aspect-ratio conditions
            "pixart-alpha": PipelineFixture(tiny_pixart_alpha_pipeline),
        },
    ),
    "dit": FamilyFixture(
        tiny_dit,
        frozenset({"self_attention", "feed_forward"}),
        {"dit": PipelineFixture(tiny_dit_pipeline, prompts=("goldfish", "207"))},
    ),
    "sana": FamilyFixture(
        tiny_sana,
        frozenset({"self_attention", "cross_attention", "feed_forward"}),
        # Gemma-2 with the complex human instruction
        {"sana": PipelineFixture(tiny_sana_pipeline)},
    ),
    "sd3": FamilyFixture(  # the fixture has dual attention in blocks 0 and 2 (attn2)
        tiny_sd3,
        frozenset({"joint_attention", "self_attention", "feed_forward", "context_feed_forward"}),
        {"sd3": PipelineFixture(tiny_sd3_pipeline)},
    ),
    "flux": FamilyFixture(
        tiny_flux,
        frozenset({"joint_attention", "self_attention", "feed_forward", "context_feed_forward"}),
        # guidance-distilled: guidance goes in through its embedding, one call per step
        {"flux": PipelineFixture(tiny_flux_pipeline, None, lambda sigma: sigma * 1000)},
    ),
    "qwenimage": FamilyFixture(
        tiny_qwenimage,
        frozenset({"joint_attention", "feed_forward", "context_feed_forward"}),
        # prompts of two lengths: the batch is padded to the longer one and masked
        {
            "qwenimage": PipelineFixture(
                tiny_qwenimage_pipeline, 1.0, lambda sigma: sigma * 1000, prompts=("a 1", "the red 22")
            )
        },
    ),
    "chroma": FamilyFixture(  # blocks of both stacks are replaced in place: their modulation is read by slot
        tiny_chroma,
        frozenset({"joint_attention", "self_attention", "feed_forward", "context_feed_forward"}),
        {
            "chroma": PipelineFixture(
                tiny_chroma_pipeline, 1.0, lambda sigma: sigma * 1000, prompts=("a 1", "the red 22")
            )
        },
    ),
    "flux2": FamilyFixture(  # single blocks hold no branch units: their parallel attention + MLP is the block
        tiny_flux2,
        frozenset({"joint_attention", "feed_forward", "context_feed_forward"}),
        {"flux2-klein": PipelineFixture(tiny_flux2_klein_pipeline, 1.0, lambda sigma: sigma * 1000)},
    ),
    "lumina2": FamilyFixture(  # gated after the RMSNorms that follow attn and feed_forward
        tiny_lumina2,
        frozenset({"self_attention", "feed_forward"}),
        # Lumina's time runs from noise (0) to image (1): the pipeline passes 1 - sigma
        {"lumina2": PipelineFixture(tiny_lumina2_pipeline, 1.0, lambda time: (1 - time) * 1000, _negated)},
    ),
    "cogview4": FamilyFixture(  # one feed-forward serves both streams
        tiny_cogview4,
        frozenset({"joint_attention", "feed_forward"}),
        {"cogview4": PipelineFixture(tiny_cogview4_pipeline, prompts=("a 1", "bb 22 c"))},
    ),
    "hidream": FamilyFixture(  # wrapped blocks, mixture-of-experts image feed-forwards
        tiny_hidream,
        frozenset({"joint_attention", "self_attention", "feed_forward", "context_feed_forward"}),
        {"hidream": PipelineFixture(tiny_hidream_pipeline, to_diffprune_prediction=_negated)},
    ),
    "stable-audio": FamilyFixture(  # one stream: [global token; audio frames]
        tiny_stable_audio,
        frozenset({"self_attention", "cross_attention", "feed_forward"}),
        # the pipeline passes atan(sigma) * 2 / pi, the training noise's own timestep (v-diffusion)
        {"stable-audio": PipelineFixture(tiny_stable_audio_pipeline, prompts=("a dog", "rain 2"))},
    ),
    # Families beyond the named ones (tiny_other_families.py): their pipeline calls are not declared yet (losses are
    # refused), so they have no pipeline fixtures; ld-pruner calibrates through the pipeline's own call.
    "auraflow": FamilyFixture(tiny_auraflow, _MMDIT_BRANCHES),
    "bria": FamilyFixture(tiny_bria, _MMDIT_BRANCHES),
    "longcat-image": FamilyFixture(tiny_longcat_image, _MMDIT_BRANCHES),
    "ovis-image": FamilyFixture(tiny_ovis_image, _MMDIT_BRANCHES),
    # single blocks' attention returns one output per stream, as the double blocks' does
    "hunyuanimage": FamilyFixture(
        tiny_hunyuanimage, frozenset({"joint_attention", "feed_forward", "context_feed_forward"})
    ),
    # one feed-forward runs over both streams
    "cogview3plus": FamilyFixture(tiny_cogview3plus, frozenset({"joint_attention", "feed_forward"})),
    "glm-image": FamilyFixture(tiny_glm_image, frozenset({"joint_attention", "feed_forward"})),
    "krea2": FamilyFixture(tiny_krea2, _SINGLE_STREAM_BRANCHES),
    "ernie-image": FamilyFixture(tiny_ernie_image, _SINGLE_STREAM_BRANCHES),
    "ideogram4": FamilyFixture(tiny_ideogram4, _SINGLE_STREAM_BRANCHES),
    # blocks cut in place: dense and expert feed-forwards sit at positions set by the block count
    "nucleusmoe-image": FamilyFixture(tiny_nucleusmoe_image, _SINGLE_STREAM_BRANCHES),
    # lists of per-sample latents and captions in, a list of predictions out; refiner blocks are not units
    "z-image": FamilyFixture(tiny_z_image, _SINGLE_STREAM_BRANCHES),
    # blocks cut in place: block i reads the text encoder's layer i of the last N the pipeline hands it
    "bria-fibo": FamilyFixture(tiny_bria_fibo, _MMDIT_BRANCHES),
    # audio; blocks alternate sliding-window and full attention by position (the cut rewrites layer_types)
    "ace-step": FamilyFixture(tiny_ace_step, frozenset({"self_attention", "cross_attention", "feed_forward"})),
}
