"""Output folders that are either complete or absent: nothing half-written survives a crash or Ctrl-C.

Work is written into a hidden staging folder beside the target and moved into place only when it succeeded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from diffprune.errors import DiffpruneError

# A run's resume state (scores, distillation checkpoints) inside its output folder; the folder's writer removes it
# once the result is saved (models/saved_folder.py).
WORK_FOLDER = ".diffprune-work"


def check_writable_parent(folder: Path) -> None:
    parent = folder.resolve().parent
    while not parent.exists():
        parent = parent.parent
    try:  # a real write: permission bits do not tell for root, read-only mounts or /proc
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError:
        raise DiffpruneError(f"cannot write to {parent}; choose an output folder you can write to") from None


def check_new_output(folder: str | Path, allowed: tuple[str, ...] = ()) -> Path:
    """The target must not hold a previous result; files named in `allowed` (resume state) may exist."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DiffpruneError(f"{folder} is a file; pass a folder for the output")
    if folder.exists():
        existing = [entry.name for entry in folder.iterdir() if entry.name not in allowed]
        if existing:
            raise DiffpruneError(
                f"{folder} already holds results ({', '.join(sorted(existing)[:3])}, ...); "
                "choose a new `out` folder or delete it"
            )
    check_writable_parent(folder)
    return folder


@contextmanager
def staged_output(folder: str | Path):
    """Yield a staging folder; on success its contents move into `folder`, on error they are deleted."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
    try:
        yield staging
        folder.mkdir(parents=True, exist_ok=True)
        for entry in staging.iterdir():
            target = folder / entry.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json_atomically(path: str | Path, data) -> None:
    """Write JSON so that a reader (or a resumed run) never sees a truncated file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as stream:
        json.dump(data, stream, indent=2)
    os.replace(temporary, path)
