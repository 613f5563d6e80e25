"""Denoisers diffprune refuses on purpose, each with the reason a cut cannot be exact (said in one line).

Classes no family describes and that are not listed here get the generic refusal (not a supported denoiser).
"""

from __future__ import annotations

from diffprune.families.registry import refuse

refuse(
    "HunyuanDiT2DModel",
    "its long skips pair block i of the first half with block N-1-i of the second, so removing a block re-pairs "
    "every skip after it",
)
