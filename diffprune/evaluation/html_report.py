"""A self-contained HTML comparison report: metrics table, the grid, audio players; everything embedded as
base64 data URIs so the one file can be mailed or attached to an issue and still show everything.
"""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
from scipy.io import wavfile

from diffprune.evaluation.tables import cell_value, format_value, table_notes

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
img.grid { max-width: 100%; image-rendering: pixelated; }
audio { width: 220px; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
p.note { background: #fff3cd; border-left: 4px solid #d39e00; padding: 0.5em 1em; }
"""


def data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode("ascii")


def png_data_uri(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return data_uri(buffer.getvalue(), "image/png")


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV (what every browser plays), peak-limited to [-1, 1]."""
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    wavfile.write(buffer, sample_rate, pcm)
    return buffer.getvalue()


def wav_data_uri(audio: np.ndarray, sample_rate: int) -> str:
    return data_uri(wav_bytes(audio, sample_rate), "audio/wav")


def metrics_table(columns: list[str], rows: list[dict]) -> str:
    """Summary rows as an HTML table, followed by their notes (measurement problems) in a visible box."""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(format_value(cell_value(row, column)))}</td>" for column in columns)
        + "</tr>"
        for row in rows
    )
    notes = "".join(f'<p class="note">{html.escape(note)}</p>' for note in table_notes(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"


def _audio_table(model_labels: list[str], row_labels: list[str], audio_uris: dict[str, list[str]]) -> str:
    head = "<th>sample</th>" + "".join(f"<th>{html.escape(label)}</th>" for label in model_labels)
    rows = []
    for index, row_label in enumerate(row_labels):
        cells = "".join(
            f'<td><audio controls preload="none" src="{audio_uris[label][index]}"></audio></td>'
            for label in model_labels
        )
        rows.append(f"<tr><td>{html.escape(row_label)}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_report(
    title: str,
    columns: list[str],
    rows: list[dict],
    grid_image,
    settings: dict,
    audio: tuple[list[str], list[str], dict[str, list[str]]] | None = None,
) -> str:
    """The whole page as a string. audio: (model labels, row labels, {model label: WAV data URIs per row})."""
    parts = [
        "<h2>Metrics</h2>",
        metrics_table(columns, rows),
        "<h2>Samples</h2>",
        "<p>Columns: models (name, denoiser parameters, measured latency). Rows: the same prompt and seed for every model.</p>",
        f'<img class="grid" alt="comparison grid" src="{png_data_uri(grid_image)}">',
    ]
    if audio is not None:
        parts += ["<h2>Audio</h2>", _audio_table(*audio)]
    parts += ["<h2>Settings</h2>", f"<pre>{html.escape(json.dumps(settings, indent=2, default=str))}</pre>"]
    return render_page(title, parts)


def render_page(title: str, body: list[str]) -> str:
    """A self-contained page (the reports' style, a heading) around `body`, a list of HTML parts."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            *body,
            "</body></html>",
        ]
    )
