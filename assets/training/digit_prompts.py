"""Prompts that name one digit, for training and checking the text-conditioned digit models.

Why: digits-clip and digits-t2i learn text -> digit from these templates, and the faithfulness
checks need the inverse (`digit_of_prompt`) to know which digit a prompt asked for. Keeping both
in one place guarantees the vocabulary the tokenizer is built from covers every prompt.
"""

from __future__ import annotations

import random
import re

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FIGURES = [str(d) for d in range(10)]

# "{d}" is replaced by a digit word or figure. No template may contain another number word.
TEMPLATES = [
    "{d}",
    "a {d}",
    "the digit {d}",
    "a handwritten {d}",
    "the number {d}",
    "number {d} in thick ink",
    "a small {d} drawn by hand",
    "a photo of the digit {d}",
    "an image of a {d}",
    "a picture of the number {d}",
    "a scanned handwritten digit {d}",
    "a blurry {d}",
    "a bold {d}",
    "a thin {d}",
    "a neat {d}",
    "a messy {d}",
    "the handwritten number {d}",
    "digit {d} written with a pen",
    "a {d} on a dark background",
    "a white {d} on black",
    "a low resolution {d}",
    "a pixelated digit {d}",
    "someone wrote a {d}",
    "a tiny image of the digit {d}",
    "a drawing of a {d}",
    "a sketch of the number {d}",
    "a {d} written in pencil",
    "a clean {d}",
    "a grayscale {d}",
    "a centered {d}",
    "a large {d}",
    "write the digit {d}",
]

_TOKEN = re.compile(r"[a-z]+|\d")
_WORD_TO_DIGIT = {w: i for i, w in enumerate(WORDS)} | {f: i for i, f in enumerate(FIGURES)}


def prompt_for(digit: int, template: str, as_word: bool) -> str:
    """Fill one template with a digit as a word ("seven") or a figure ("7")."""
    return template.format(d=WORDS[digit] if as_word else FIGURES[digit])


def all_prompts(digit: int) -> list[str]:
    """Every template x {word, figure} prompt for one digit."""
    return [prompt_for(digit, t, w) for t in TEMPLATES for w in (True, False)]


def random_prompt(digit: int, rng: random.Random) -> str:
    """One random prompt for `digit` (words twice as often as figures: words are what users type)."""
    return prompt_for(digit, rng.choice(TEMPLATES), rng.random() < 0.67)


def digit_of_prompt(prompt: str) -> int:
    """The digit a prompt names, read from its one digit word or figure.

    Raises ValueError if the prompt names no digit or more than one distinct digit, because a
    faithfulness check on such a prompt would be meaningless.
    """
    found = {_WORD_TO_DIGIT[t] for t in _TOKEN.findall(prompt.lower()) if t in _WORD_TO_DIGIT}
    if len(found) != 1:
        raise ValueError(f"prompt must name exactly one digit, found {sorted(found)}: {prompt!r}")
    return found.pop()


def vocabulary() -> list[str]:
    """Every lower-case word that appears in any prompt (the tokenizer must cover all of them)."""
    words = set(WORDS) | set(FIGURES)
    for t in TEMPLATES:
        words |= set(_TOKEN.findall(t.replace("{d}", "").lower()))
    return sorted(words)
