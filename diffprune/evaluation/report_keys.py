"""Key names of saved evaluation reports across versions: reports written before diffprune said "denoiser" for any
denoiser named the denoiser forward's latency `unet_forward`. Every reader of a saved latency or speedup report goes
through `current_names`, so those reports stay readable. Imports nothing (the CLI's tables read reports without
torch).
"""

from __future__ import annotations

OLD_NAMES = {
    "unet_forward": "denoiser_forward",
    "unet_batch_size": "denoiser_batch_size",
    "realisation_ratio_unet_forward": "realisation_ratio_denoiser_forward",
}


def current_names(report):
    """A saved latency or speedup report (or anything holding one) with the keys of older reports renamed to
    today's (OLD_NAMES: `unet_forward` is `denoiser_forward`); a current report comes back equal."""
    if isinstance(report, dict):
        return {OLD_NAMES.get(key, key): current_names(value) for key, value in report.items()}
    if isinstance(report, list):
        return [current_names(value) for value in report]
    return report
