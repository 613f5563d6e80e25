"""Task adapters: the only code that knows a pipeline family (text-to-image, unconditional image, audio).

`adapter_for(pipeline, settings)` picks one by what the pipeline has (a tokenizer means text conditioning),
not by a table of pipeline names.
"""

from .base import CalibrationSettings, TaskAdapter
from .text_conditioned import TextConditionedAdapter
from .unconditional import UnconditionalAdapter


def adapter_for(pipeline, settings: CalibrationSettings | None = None) -> TaskAdapter:
    from ..loading import check_has_unet

    check_has_unet(pipeline)
    settings = settings or CalibrationSettings()
    if getattr(pipeline, "tokenizer", None) is not None:
        return TextConditionedAdapter(pipeline, settings)
    return UnconditionalAdapter(pipeline, settings)


__all__ = ["CalibrationSettings", "TaskAdapter", "adapter_for"]
