"""A labelled comparison grid: one column per model, one row per prompt or seed, drawn with PIL.

Small samples (16x16 digits, 32x32 mels) are scaled up with nearest-neighbour so pixels stay honest.
"""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw, ImageFont

CELL = 128  # side of one sample's square in the grid, in pixels
GAP = 4
LABEL_WIDTH = 220  # left column with the prompt or seed of each row
HEADER_HEIGHT = 64  # top row with each model's name, parameters and latency
FONT_SIZE = 13
BACKGROUND = "white"
TEXT = "black"


def font(size: int = FONT_SIZE):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def grid_size(rows: int, columns: int, cell: int = CELL) -> tuple[int, int]:
    """(width, height) of a grid of `rows` samples by `columns` models."""
    return LABEL_WIDTH + columns * (cell + GAP), HEADER_HEIGHT + rows * (cell + GAP)


def fit_to_cell(image: Image.Image, cell: int) -> Image.Image:
    """Scale to fit a cell x cell square (keeping the aspect ratio) and centre it."""
    scale = cell / max(image.size)
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    fitted = image.convert("RGB").resize(size, resample)
    canvas = Image.new("RGB", (cell, cell), BACKGROUND)
    canvas.paste(fitted, ((cell - size[0]) // 2, (cell - size[1]) // 2))
    return canvas


def draw_comparison_grid(
    columns: list[tuple[list[str], list[Image.Image]]], row_labels: list[str], cell: int = CELL
) -> Image.Image:
    """columns: (header lines, one image per row) per model; row_labels: one text per row."""
    width, height = grid_size(len(row_labels), len(columns), cell)
    grid = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    text_font = font()
    line_height = FONT_SIZE + 3
    for column, (header, images) in enumerate(columns):
        left = LABEL_WIDTH + column * (cell + GAP)
        for line_index, line in enumerate(header[: HEADER_HEIGHT // line_height]):
            draw.text(
                (left + 2, 4 + line_index * line_height),
                _clip_text(draw, line, cell, text_font),
                fill=TEXT,
                font=text_font,
            )
        for row, image in enumerate(images[: len(row_labels)]):
            grid.paste(fit_to_cell(image, cell), (left, HEADER_HEIGHT + row * (cell + GAP)))
    max_lines = cell // line_height
    for row, label in enumerate(row_labels):
        top = HEADER_HEIGHT + row * (cell + GAP)
        lines = textwrap.wrap(label, width=28)[:max_lines] or [""]
        for line_index, line in enumerate(lines):
            draw.text((6, top + 4 + line_index * line_height), line, fill=TEXT, font=text_font)
    return grid


def _clip_text(draw: ImageDraw.ImageDraw, text: str, width: int, text_font) -> str:
    """Shorten text with an ellipsis until it fits in `width` pixels."""
    if draw.textlength(text, font=text_font) <= width:
        return text
    while text and draw.textlength(text + "...", font=text_font) > width:
        text = text[:-1]
    return text + "..."
