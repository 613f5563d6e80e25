"""Do multi-process runs always end cleanly? Launch 2-process runs many times and count the ones that did not.

Two launches, each N times, as a user would start them on a machine without GPUs (`accelerate launch --multi_gpu
--num_processes 2`, CPU processes over gloo; tests/distributed_launch.py, which the tests use too):
  * scoring: the tests' scoring script (tests/distributed_scoring.py ld-pruner), the API called from a script;
  * prune: `diffprune prune digits-ddpm` with LD-Pruner on a tiny calibration (2 samples, 2 steps), the CLI.
A launch is clean when the launcher exits 0 and the output is there. Failures print every process's stderr.
Counts, not timings: the CPU may be shared (it only makes the runs slower). Writes a JSON summary and the
docs/results.md section stress-distributed.

    python eval/stress_distributed.py --launches 50
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))
sys.path.insert(0, str(ROOT / "tests"))

from distributed_launch import launch_two_processes  # noqa: E402
from results_file import hardware, write_section  # noqa: E402

PRUNE = [
    "-m",
    "diffprune",
    "prune",
    "digits-ddpm",
    "--criterion",
    "ld-pruner",
    "--num-samples",
    "2",
    "--inference-steps",
    "2",
    "--keep-macs",
    "0.8",
    "--device",
    "cpu",
]


def launches(kind: str, work: Path) -> tuple[list[str], Path]:
    """The launched command's arguments and the output a clean launch leaves."""
    if kind == "scoring":
        output = work / "scores.json"
        return [str(ROOT / "tests" / "distributed_scoring.py"), "ld-pruner", str(output)], output
    output = work / "pruned"
    return [*PRUNE, "--out", str(output)], output / "pruning_report.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launches", type=int, default=50, help="launches of each kind (default 50)")
    parser.add_argument("--kinds", default="scoring,prune", help="scoring, prune or both (default both)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one launch may take")
    parser.add_argument("--out", default="eval/results/stress_distributed.json")
    parser.add_argument("--no-results-md", action="store_true", help="leave docs/results.md alone")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # two processes on a shared CPU: one thread each
    started = time.time()
    load_at_start = os.getloadavg()[0]
    summary = {}
    for kind in [kind.strip() for kind in args.kinds.split(",") if kind.strip()]:
        clean, failures, seconds = 0, [], []
        for index in range(args.launches):
            work = Path(tempfile.mkdtemp(prefix=f"stress-{kind}-"))
            try:
                arguments, output = launches(kind, work)
                launched = launch_two_processes(arguments, work / "logs", timeout=args.timeout)
                seconds.append(launched.seconds)
                if launched.clean and output.exists():
                    clean += 1
                else:
                    why = "" if launched.clean else launched.report()
                    report = why or f"exit code 0 but {output.name} is missing\n{launched.report()}"
                    failures.append({"launch": index, "returncode": launched.returncode, "report": report})
                    print(f"{kind} launch {index}: FAILED\n{report}", flush=True)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            print(f"{kind}: {clean} clean of {index + 1}", flush=True)
        summary[kind] = {
            "command": "accelerate launch --multi_gpu --num_processes 2 " + " ".join(arguments),
            "launches": args.launches,
            "clean": clean,
            "failed": len(failures),
            "median_seconds": sorted(seconds)[len(seconds) // 2] if seconds else None,
            "failures": failures,
        }
    import accelerate
    import torch

    result = {
        "command": "python eval/stress_distributed.py " + " ".join(sys.argv[1:]),
        "hardware": hardware(),
        "torch": torch.__version__,
        "accelerate": accelerate.__version__,
        "python": sys.version.split()[0],
        "load_average": f"{load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end (1-minute)",
        "wall_s": round(time.time() - started),
        "kinds": summary,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    table = results_table(result)
    print(table)
    if not args.no_results_md:
        write_section("stress-distributed", results_section(result, table))
    print(f"wrote {out}")


def results_table(result: dict) -> str:
    lines = ["| launched | launches | clean | failed |", "|---|---:|---:|---:|"]
    for kind in result["kinds"].values():
        lines.append(f"| `{kind['command']}` | {kind['launches']} | {kind['clean']} | {kind['failed']} |")
    return "\n".join(lines)


def results_section(result: dict, table: str) -> str:
    return "\n".join(
        [
            "## Multi-process runs end cleanly",
            "",
            f"Command: `{result['command']}` · {result['hardware']}, accelerate {result['accelerate']}, Python "
            f"{result['python']} · load average {result['load_average']} (counts, not timings) · {result['wall_s']} s",
            "",
            "2 CPU processes over gloo, started as a user would on a machine without GPUs. A launch is clean when the "
            "launcher exits 0 and the output was written.",
            "",
            table,
        ]
    )


if __name__ == "__main__":
    main()
