"""Task adapters: the only code that knows a pipeline family (text-to-image UNets, text-to-image diffusion
transformers, class-conditional transformers, unconditional image, audio).

`adapter_for(pipeline, settings)` picks one by the pipeline's family (generation.pipeline_family, judged by
its components, not by a table of pipeline names).
"""

from diffprune.models.adapters.base import CalibrationSettings, TaskAdapter
from diffprune.models.adapters.class_conditional import ClassConditionalAdapter
from diffprune.models.adapters.text_conditioned import TextConditionedAdapter
from diffprune.models.adapters.transformer_text import TransformerTextAdapter
from diffprune.models.adapters.unconditional import UnconditionalAdapter
from diffprune.structure.denoiser import denoiser_of
from diffprune.structure.transformer_depth import is_diffusion_transformer


def adapter_for(pipeline, settings: CalibrationSettings | None = None) -> TaskAdapter:
    from diffprune.models.generation import CLASS_CONDITIONAL_IMAGE, pipeline_family, takes_prompts
    from diffprune.models.loading import check_has_denoiser

    check_has_denoiser(pipeline)
    settings = settings or CalibrationSettings()
    if not takes_prompts(pipeline):
        adapter_class = UnconditionalAdapter
    elif pipeline_family(pipeline) == CLASS_CONDITIONAL_IMAGE:
        adapter_class = ClassConditionalAdapter
    elif is_diffusion_transformer(denoiser_of(pipeline)):
        adapter_class = TransformerTextAdapter
    else:
        adapter_class = TextConditionedAdapter
    return adapter_class(pipeline, settings)


__all__ = ["CalibrationSettings", "TaskAdapter", "adapter_for"]
