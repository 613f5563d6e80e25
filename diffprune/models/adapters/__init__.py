"""Task adapters: the only code that knows a pipeline task (conditioned on prompts or class labels, or
unconditional): calibration latents drawn through the pipeline's own call, and the training-time loss, whose
denoiser call each denoiser family declares (diffprune/families).

`adapter_for(pipeline, settings)` picks one by whether the pipeline's samples take a condition
(generation.takes_prompts, judged by its components, not by a table of pipeline names).
"""

from diffprune.models.adapters.base import CalibrationSettings, TaskAdapter
from diffprune.models.adapters.conditioned import ConditionedAdapter
from diffprune.models.adapters.unconditional import UnconditionalAdapter
from diffprune.models.generation import takes_prompts
from diffprune.models.loading import check_has_denoiser


def adapter_for(pipeline, settings: CalibrationSettings | None = None) -> TaskAdapter:
    check_has_denoiser(pipeline)
    settings = settings or CalibrationSettings()
    adapter_class = ConditionedAdapter if takes_prompts(pipeline) else UnconditionalAdapter
    return adapter_class(pipeline, settings)


__all__ = ["CalibrationSettings", "TaskAdapter", "adapter_for"]
