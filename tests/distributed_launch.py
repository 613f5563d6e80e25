"""Launching 2 CPU processes with `accelerate launch` as a user would, for tests/test_distributed.py and
eval/stress_distributed.py: each process's own stdout and stderr are kept (torchrun's --tee into --log_dir), so a
failed launch shows what the failing process said, not only the launcher's traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Launch:
    returncode: int
    seconds: float
    launcher_stderr: str
    process_logs: dict[str, str]  # "rank 0 stderr" -> text

    @property
    def clean(self) -> bool:
        return self.returncode == 0

    def report(self, tail: int = 4000) -> str:
        """The launcher's exit code and the end of every process's stderr, then of the launcher's own."""
        parts = [f"launch exited with {self.returncode} after {self.seconds:.0f} s"]
        for name, text in sorted(self.process_logs.items()):
            if "stderr" in name and text.strip():
                parts.append(f"--- {name} ---\n{text[-tail:]}")
        parts.append(f"--- launcher stderr ---\n{self.launcher_stderr[-tail:]}")
        return "\n".join(parts)


def free_port() -> int:
    """A TCP port nothing listens on now, for the processes' rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_two_processes(arguments: list[str], log_dir: Path, timeout: float = 300) -> Launch:
    """`accelerate launch --multi_gpu --num_processes 2 ARGUMENTS` on the CPU (gloo), each process's streams
    written under `log_dir`. ARGUMENTS: a script and its arguments, or `-m module ...`."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [
        # --multi_gpu with no GPU visible starts torchrun processes that talk over gloo on the CPU
        # (--cpu alone would start a single process).
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--main_process_port",
        str(free_port()),  # not the default 29500: launches from other test processes may run at the same time
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--tee",
        "3",  # stdout and stderr of every process, into log_dir and to the console
        "--log_dir",
        str(log_dir),
        *arguments,
    ]
    # CPU processes over gloo even on a GPU machine: two processes sharing one GPU over NCCL is not what is tested.
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "true", "PYTHONFAULTHANDLER": "1"}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    logs = {}
    for path in sorted(log_dir.rglob("*.log")):
        # torchrun writes <log_dir>/<run id>/attempt_<n>/<local rank>/{stdout,stderr}.log
        logs[f"rank {path.parent.name} {path.stem}"] = path.read_text(errors="replace")
    return Launch(result.returncode, time.perf_counter() - started, result.stderr, logs)
