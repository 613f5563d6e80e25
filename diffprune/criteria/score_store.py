"""Scores written as they are computed, so an interrupted run resumes where it stopped.

One JSON file per work folder: the settings that produced the scores and {round: {unit: score}}. Writes are
atomic (temp file + rename), so an interrupt never leaves a truncated file. A store whose settings differ
from the current run is refused rather than silently mixed.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffprune.errors import DiffpruneError
from diffprune.outputs import write_json_atomically


class ScoreStore:
    def __init__(self, path: str | Path | None, settings: dict):
        self.path = Path(path) if path else None
        self.settings = json.loads(json.dumps(settings))  # normalise tuples etc. as JSON would
        self.rounds: dict[str, dict[str, float]] = {}
        if self.path and self.path.exists():
            try:
                saved = json.loads(self.path.read_text())
            except json.JSONDecodeError as error:
                raise DiffpruneError(f"{self.path} is damaged ({error}); delete it to start scoring afresh") from error
            if saved.get("settings") != self.settings:
                raise DiffpruneError(
                    f"{self.path.parent} holds scores from different settings; use a new `out` folder or delete it"
                )
            self.rounds = saved.get("rounds", {})

    @property
    def resumed_count(self) -> int:
        return sum(len(scores) for scores in self.rounds.values())

    def get(self, round_index: int, name: str) -> float | None:
        return self.rounds.get(str(round_index), {}).get(name)

    def remember(self, round_index: int, scores: dict[str, float]) -> None:
        """Keep scores in memory without writing (non-main processes)."""
        self.rounds.setdefault(str(round_index), {}).update({k: float(v) for k, v in scores.items()})

    def put_many(self, round_index: int, scores: dict[str, float]) -> None:
        self.remember(round_index, scores)
        if self.path:
            write_json_atomically(self.path, {"settings": self.settings, "rounds": self.rounds})

    def in_memory_copy(self) -> ScoreStore:
        copy = ScoreStore(None, self.settings)
        copy.rounds = {key: dict(value) for key, value in self.rounds.items()}
        return copy
