"""The GPU check in one command: what diffprune has to prove on a CUDA machine, in about 8 minutes on one
H100-class GPU, on a machine that may have torch but neither diffusers nor a network.

    python eval/gpu_check.py                      # on the GPU machine; writes eval/results/gpu_check.json
    python eval/gpu_check.py --dry-run --out-dir /tmp/check   # tiny shapes on the CPU, a few seconds
    python eval/gpu_check.py --download-wheels    # here, before: the packages the GPU machine lacks, as wheels
    python eval/gpu_check.py --apply gpu_check.json   # here, after: its docs/results.md sections into ours

Parts, each in its own process with its own time limit (a share of --budget-s; time a part leaves unused goes to
the next), so one part that hangs or runs long cannot take the others with it:
  tests               pytest on the gpu-marked tests (tests/test_gpu.py and every file with @pytest.mark.gpu);
  speedup-eager       eval/benchmark_sd15_speedup.py: the SD-1.5-shape UNet and 25-step guided pipeline, fp16,
  speedup-compiled    batch 1 and 8, the dense model and a cut to 0.7 of the MACs timed together, eager and
                      torch.compile(mode="reduce-overhead");
  ld-pruner-adaptive  one LD-Pruner round at the `diffprune prune` defaults (calibration, budget, batching) on the
  ld-pruner-exhaustive  SD-1.5-shape pipeline in fp16, with --criterion-option allocation=adaptive / exhaustive; a
                      round that outlasts its limit is stopped and reported with what it scored (and, exhaustive,
                      the time the whole round would take at that pace); an LDPruner without the option is
                      reported as skipped with the reason.
It writes one JSON (--out-dir) with the hardware, package versions and every part's result, and the docs/results.md
sections gpu-check and sd15-speedup-gpu (also as gpu_check.md beside the JSON, for machines whose files do not
come back).

Packages: where diffusers, transformers or accelerate are missing (or older than what was tested here), carry them
as wheels in .gpu-wheels/ (git-ignored; --download-wheels fetches the versions installed here, for the GPU
machine's Python and platform). Finding that folder, this script installs the wheels with
`pip install --no-index --no-deps --target .gpu-deps` and puts .gpu-deps first on the path of every process it
starts; the checkout itself is put on the path too, so diffprune need not be installed. See README, "GPU check".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".gpu-wheels"
DEPS = ROOT / ".gpu-deps"
# What the GPU machine may lack, with what they need that it may lack too (regex: transformers wants a recent one),
# and pytest with its own needs (its plugins there may not match; we run with plugin autoload off).
CARRIED = ["diffusers", "transformers", "accelerate", "regex", "pytest", "pluggy", "iniconfig"]
DEVICE_PYTHON = "3.12"  # /work/.library/device/KINDS.md: python3 is 3.12 on the lent H200 machines
DEVICE_PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
# Seconds per part out of the default budget of 480 (8 minutes); scaled to --budget-s.
SHARES = {
    "tests": 60,
    "speedup-eager": 100,
    "speedup-compiled": 170,  # four compilations (two models, two batch sizes) before anything is timed
    "ld-pruner-adaptive": 75,
    "ld-pruner-exhaustive": 75,
}
ALLOCATIONS = {"ld-pruner-adaptive": "adaptive", "ld-pruner-exhaustive": "exhaustive"}


# ---------------------------------------------------------------------------------------------------- packages


def bootstrap() -> dict:
    """Install carried wheels into .gpu-deps (once per set of wheels) and put it, and the checkout, first on the
    path of this process and of every process it starts. Call before anything imports diffusers or diffprune."""
    report = {"wheels": [], "installed_into": None}
    wheels = sorted(WHEELS.glob("*.whl")) if WHEELS.is_dir() else []
    paths = [str(ROOT)]
    unfit = [wheel.name for wheel in wheels if not installs_here(wheel.name)]
    if unfit:  # e.g. wheels fetched for the GPU machine's Python, found on a developer's machine
        report["not_installed"] = f"not for this Python ({platform.python_version()}): {', '.join(unfit)}"
        wheels = []
    if wheels:
        report["wheels"] = [wheel.name for wheel in wheels]
        stamp = DEPS / ".installed-from"
        wanted = "\n".join(report["wheels"])
        if not stamp.exists() or stamp.read_text() != wanted:
            import shutil

            shutil.rmtree(DEPS, ignore_errors=True)
            command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
            command += ["--no-cache-dir", "--target", str(DEPS), *map(str, wheels)]
            subprocess.run(command, check=True)
            stamp.write_text(wanted)
        report["installed_into"] = str(DEPS)
        paths.insert(0, str(DEPS))
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    existing = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([existing] if existing else []))
    return report


def installs_here(name: str) -> bool:
    """Whether a wheel file installs into the running interpreter (its tags against this interpreter's)."""
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    supported = set(sys_tags())
    return any(tag in supported for tag in parse_wheel_filename(name)[3])


def preflight() -> dict:
    """Versions of what the check needs, and every requirement of diffprune and of the carried packages that the
    environment does not satisfy (checked, not guessed: a mismatch is reported before anything runs)."""
    from importlib import metadata

    import tomllib
    from packaging.requirements import Requirement

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in CARRIED:
        if version(name):
            requirements += metadata.requires(name) or []
    unsatisfied = []
    for text in dict.fromkeys(requirements):
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        installed = version(requirement.name)
        if installed is None or not requirement.specifier.contains(installed, prereleases=True):
            unsatisfied.append(f"{text} (installed: {installed or 'none'})")
    names = ["torch", "diffusers", "transformers", "accelerate", "huggingface-hub", "tokenizers", "safetensors"]
    names += ["torchmetrics", "regex", "pytest", "numpy"]
    return {"python": platform.python_version(), "versions": {n: version(n) for n in names}, "unsatisfied": unsatisfied}


def download_wheels() -> None:
    """Here, with a package registry at hand: the carried packages at the versions installed here, as wheels for
    the GPU machine's Python and platform, into .gpu-wheels/ (git-ignored)."""
    from importlib import metadata

    WHEELS.mkdir(exist_ok=True)
    for old in WHEELS.glob("*.whl"):
        old.unlink()  # one version of each: two would stop the install there
    pins = [f"{name}=={metadata.version(name)}" for name in CARRIED]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version"]
    command += [DEVICE_PYTHON, "--implementation", "cp", "-d", str(WHEELS)]
    for platform_tag in DEVICE_PLATFORMS:
        command += ["--platform", platform_tag]
    subprocess.run(command + pins, check=True)
    wheels = sorted(WHEELS.glob("*.whl"))
    bad = [wheel.name for wheel in wheels if not wheel_fits(wheel.name)]
    if bad:
        raise SystemExit(f"wheels that would not install on Python {DEVICE_PYTHON} x86-64 Linux: {', '.join(bad)}")
    size = sum(wheel.stat().st_size for wheel in wheels) / 2**20
    print(f'{len(wheels)} wheels, {size:.1f} MiB, in {WHEELS} (carry it: `carry: [".gpu-wheels"]`)')


def wheel_fits(name: str) -> bool:
    """Whether a wheel file installs on the GPU machine (CPython 3.12, x86-64 manylinux), by its tags."""
    python_tag, abi_tag, platform_tag = name.removesuffix(".whl").split("-")[-3:]
    version = "cp" + DEVICE_PYTHON.replace(".", "")
    python_ok = any(tag in ("py3", version) for tag in python_tag.split("."))
    abi_ok = any(tag in ("none", "abi3", version) for tag in abi_tag.split("."))
    platform_ok = any(
        tag == "any" or (tag.startswith("manylinux") and tag.endswith("x86_64")) for tag in platform_tag.split(".")
    )
    return python_ok and abi_ok and platform_ok


# ------------------------------------------------------------------------------------------------------- parts


def run_part(command: list[str], limit_s: float, log: Path) -> dict:
    """A part's process with a time limit; its output goes to `log` (the end of it into the result)."""
    started = time.perf_counter()
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=ROOT)
        try:
            returncode = process.wait(timeout=max(limit_s, 1))
            timed_out = False
        except subprocess.TimeoutExpired:
            process.kill()
            returncode, timed_out = process.wait(), True
    tail = log.read_text(errors="replace")[-3000:]
    return {
        "command": " ".join(command),
        "limit_s": round(limit_s),
        "seconds": round(time.perf_counter() - started, 1),
        "returncode": returncode,
        "timed_out": timed_out,
        "output_tail": tail,
    }


def gpu_test_files() -> list[str]:
    """tests/test_gpu.py and every test file that marks tests `gpu` (collecting only these keeps test files whose
    imports need packages the GPU machine lacks, such as librosa, out of the run)."""
    files = [path for path in sorted((ROOT / "tests").glob("test_*.py")) if "pytest.mark.gpu" in path.read_text()]
    return [str(path.relative_to(ROOT)) for path in files]


def part_tests(args, limit_s: float, out_dir: Path) -> dict:
    junit = out_dir / "gpu_tests.xml"
    command = [sys.executable, "-m", "pytest", *gpu_test_files(), "-m", "gpu", "-p", "no:cacheprovider"]
    command += ["-q", f"--junitxml={junit}"]
    result = run_part(command, limit_s, out_dir / "gpu_tests.log")
    if junit.exists():
        import xml.etree.ElementTree as ElementTree

        suite = ElementTree.parse(junit).getroot()
        suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
        counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
        counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
        result["counts"] = counts
        result["failed_tests"] = [
            f"{case.get('classname')}::{case.get('name')}"
            for case in suite.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None
        ]
    result["ok"] = result["returncode"] == 0 and not result["timed_out"]
    return result


def speedup_options(args, compiled: bool) -> list[str]:
    if args.dry_run:  # the same code paths on a tiny stand-in of SD-1.5's layout
        shape = ["--device", "cpu", "--scale", "8", "--resolution", "64", "--steps", "2"]
        shape += ["--runs", "2", "--warmup", "0", "--batch-sizes", "1,2", "--threads", "1"]
    else:
        shape = ["--device", "cuda", "--dtype", "fp16", "--batch-sizes", "1,8", "--runs", str(args.rounds)]
        shape += ["--warmup", "2"]  # a GPU settles fast; CUDA graphs are recorded in the first compiled calls
    mode = ["--compile", "--no-eager"] if compiled else []
    return [*shape, "--keep", "0.7", "--no-bk-sdm-like", *mode, "--no-results-md"]


def part_speedup(args, limit_s: float, out_dir: Path, compiled: bool) -> dict:
    if compiled and args.dry_run:
        return {"skipped": "dry run: compiling on a CPU takes minutes; the compiled mode runs on the GPU only"}
    name = "compiled" if compiled else "eager"
    json_path = out_dir / f"sd15_speedup_{name}.json"
    command = [sys.executable, str(ROOT / "eval" / "benchmark_sd15_speedup.py"), *speedup_options(args, compiled)]
    result = run_part(command + ["--out", str(json_path)], limit_s, out_dir / f"sd15_speedup_{name}.log")
    result["ok"] = result["returncode"] == 0 and json_path.exists()
    if json_path.exists():
        result["benchmark"] = json.loads(json_path.read_text())
    return result


def missing_allocation_option(allocation: str) -> str | None:
    """Why LD-Pruner cannot be asked for `allocation` here (an older diffprune), or None when it can."""
    from diffprune.criteria import get_criterion, parse_option_values
    from diffprune.errors import DiffpruneError

    try:
        get_criterion("ld-pruner", **parse_option_values("ld-pruner", [f"allocation={allocation}"]))
    except DiffpruneError as error:
        return f"LDPruner has no allocation option here ({error})"
    return None


def part_ld_pruner(args, limit_s: float, out_dir: Path, part: str) -> dict:
    allocation = ALLOCATIONS[part]
    missing = missing_allocation_option(allocation)
    if missing:
        return {"skipped": missing}
    if args.dry_run and allocation == "exhaustive":
        return {"skipped": "dry run: the same code path as ld-pruner-adaptive, which the dry run takes"}
    work = out_dir / f"{part}-work"
    progress = out_dir / f"{part}-progress.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--ld-pruner-child", allocation]
    command += ["--work-dir", str(work), "--progress", str(progress)] + (["--dry-run"] if args.dry_run else [])
    result = run_part(command, limit_s, out_dir / f"{part}.log")
    child = json.loads(progress.read_text()) if progress.exists() else {}
    result.update(child)
    scores = work / "scores.json"
    if scores.exists():
        rounds = json.loads(scores.read_text()).get("rounds", {})
        result["units_scored"] = len(rounds.get("0", {}))
    if result["timed_out"] and allocation == "exhaustive" and result.get("units_scored") and child.get("candidates"):
        # every candidate costs the same in an exhaustive round: the pace so far gives the whole round's time
        pace = child["scoring_seconds"] / result["units_scored"]
        result["extrapolated_round_seconds"] = round(pace * child["candidates"])
    result["ok"] = result["returncode"] == 0 and not result["timed_out"] and "removed_units" in result
    return result


def ld_pruner_child(args) -> None:
    """One LD-Pruner round at the `diffprune prune` defaults on the SD-1.5-shape pipeline; progress (denoiser
    calls, seconds) is written to --progress as it goes, so a round stopped at its time limit still reports."""
    import threading

    import torch

    sys.path.insert(0, str(ROOT / "eval"))
    from benchmark_sd15_speedup import sd15_pipeline, sd15_unet

    from diffprune.cli import build_parser
    from diffprune.cli.prune import budget_from_args, calibration_from_args, criterion_from_args, kinds_filter
    from diffprune.evaluation.latency import counted_denoiser_calls
    from diffprune.pruning.prune import prune
    from diffprune.structure.units import find_units

    progress_path = Path(args.progress)
    state = {"allocation": args.ld_pruner_child, "denoiser_calls": 0, "denoiser_samples": 0}
    lock = threading.Lock()

    def write(**fields) -> None:
        with lock:
            state.update(fields)
            temporary = progress_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(state, indent=2))
            temporary.replace(progress_path)

    cli = ["prune", "sd15-shape", "--out", str(args.work_dir)]
    cli += ["--criterion-option", f"allocation={args.ld_pruner_child}"]
    if args.dry_run:  # the code path only: a tiny calibration and a few candidates
        cli += ["--num-samples", "2", "--inference-steps", "2", "--kinds", "mid_block,attention", "--num-units", "3"]
    options = build_parser().parse_args(cli)
    criterion = criterion_from_args(options)  # the parent checked that the allocation option exists
    device, dtype = ("cpu", torch.float32) if args.dry_run else ("cuda", torch.float16)
    torch.manual_seed(0)
    scale, resolution = (8, 64) if args.dry_run else (1, 512)
    pipeline = sd15_pipeline(sd15_unet(resolution, scale), scale).to(device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    unit_filter = kinds_filter(options.kinds)
    candidates = len([unit for unit in find_units(pipeline.unet) if unit_filter is None or unit_filter(unit)])
    settings = {
        "model": f"SD-1.5-shape pipeline, random weights, {resolution}x{resolution}"
        + (f", widths / {scale}" if scale > 1 else ""),
        "dtype": str(dtype).removeprefix("torch."),
        "num_samples": options.num_samples,
        "inference_steps": options.inference_steps,
        "variants_per_batch": options.variants_per_batch,
        "budget": str(budget_from_args(options)),
        "candidates": candidates,
    }
    write(**settings, scoring_seconds=0.0)
    started = time.perf_counter()
    done = threading.Event()
    with counted_denoiser_calls(pipeline) as batches:

        def report_progress() -> None:  # every 2 s, so a round stopped at its limit still says how far it got
            while not done.wait(2):
                write(scoring_seconds=round(time.perf_counter() - started, 1), **call_counts(batches))

        threading.Thread(target=report_progress, daemon=True).start()
        try:
            result = prune(
                pipeline,
                criterion,
                budget_from_args(options),
                unit_filter=unit_filter,
                rounds=options.rounds,
                calibration=calibration_from_args(options, pipeline),
                work_dir=Path(args.work_dir),
                variants_per_batch=options.variants_per_batch,
                ranking=options.ranking,
                show_progress=False,
            )
        finally:
            done.set()
    counts = call_counts(batches)
    report = result.report
    write(
        scoring_seconds=round(time.perf_counter() - started, 1),
        **counts,
        removed_units=result.removed,
        kept_macs=report["totals_after"]["macs"] / report["totals_before"]["macs"],
        report_scoring={key: value for key, value in report.items() if "call" in key or "scoring" in key},
    )


def call_counts(batches: list) -> dict:
    """Denoiser calls and the samples they carried (a batch of 8 variants x 2 guidance halves is 16 samples)."""
    return {"denoiser_calls": len(batches), "denoiser_samples": sum(batch or 0 for batch in batches)}


# ------------------------------------------------------------------------------------------------------ report


def hardware() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count()}
    sys.path.insert(0, str(ROOT / "eval"))
    from results_file import cpu_name

    info["cpu"] = cpu_name()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        try:
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            info["driver"] = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    return info


def hardware_text(info: dict) -> str:
    if "gpu" in info:
        return (
            f"{info['gpu']} ({info['gpu_memory_gib']} GiB), driver {info.get('driver')}, CUDA {info['cuda']}, "
            f"torch {info['torch']}, Python {info['python']}, {info['cpu']} ({info['cpu_count']} CPUs)"
        )
    return f"no GPU: {info['cpu']} ({info['cpu_count']} CPUs), torch {info['torch']}, Python {info['python']}"


def sections(result: dict) -> dict[str, str]:
    """The docs/results.md sections: gpu-check (tests, LD-Pruner rounds) and sd15-speedup-gpu (both modes' rows
    in the benchmark's own table)."""
    parts = result["parts"]
    lines = [
        "## GPU check" + (" (dry run: tiny shapes on the CPU, no numbers to quote)" if result["dry_run"] else ""),
        "",
        f"Command: `{result['command']}` · {hardware_text(result['hardware'])} · {result['wall_s']:.0f} s of a "
        f"{result['budget_s']:.0f} s budget",
        "",
    ]
    if result["preflight"]["unsatisfied"]:
        lines += ["Unsatisfied requirements: " + "; ".join(result["preflight"]["unsatisfied"]), ""]
    tests = parts.get("tests")
    if tests:
        counts = tests.get("counts")
        text = ", ".join(f"{value} {key}" for key, value in counts.items()) if counts else "no test report"
        lines += [
            f"GPU tests ({', '.join(gpu_test_files())}): {text}"
            + (" (stopped at its time limit)" if tests["timed_out"] else "")
            + "."
        ]
        if tests.get("failed_tests"):
            lines += ["Failed: " + ", ".join(tests["failed_tests"])]
        lines += [""]
    rounds = [(name, parts[name]) for name in ALLOCATIONS if name in parts]
    if rounds:
        first = next((part for _, part in rounds if "num_samples" in part), {})
        lines += [
            "One LD-Pruner round at the `diffprune prune` defaults"
            + (
                f" ({first['num_samples']} samples x {first['inference_steps']} steps, {first['variants_per_batch']} "
                f"variants per batch, {first['budget']}) on the {first['model']}, {first['dtype']}, "
                f"{first['candidates']} candidate units:"
                if first
                else ":"
            ),
            "",
            "| allocation | finished | seconds | denoiser calls | denoiser samples | removed units | kept MACs | note |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for name, part in rounds:
            note = part.get("skipped", "")
            if part.get("timed_out"):
                note = f"stopped at the {part['limit_s']} s limit after {part.get('units_scored', 0)} scored units"
                if part.get("extrapolated_round_seconds"):
                    note += f"; the whole round at that pace: about {part['extrapolated_round_seconds']} s"
            elif not part.get("ok") and not note:
                note = f"failed (exit {part['returncode']}; see the JSON's output_tail)"
            kept = f"{part['kept_macs']:.3f}" if part.get("kept_macs") is not None else "–"
            removed = len(part["removed_units"]) if part.get("removed_units") is not None else "–"
            lines.append(
                f"| {ALLOCATIONS[name]} | {'yes' if part.get('ok') else 'no'} | {part.get('scoring_seconds', '–')} "
                f"| {part.get('denoiser_calls', '–')} | {part.get('denoiser_samples', '–')} | {removed} | {kept} | {note} |"
            )
        finished = [part for _, part in rounds if part.get("ok")]
        if len(finished) == 2:
            same = set(finished[0]["removed_units"]) == set(finished[1]["removed_units"])
            lines += ["", f"Adaptive and exhaustive removed {'the same' if same else 'different'} units."]
        lines += [""]
    result_sections = {"gpu-check": "\n".join(lines).rstrip()}
    benchmarks = [
        parts[name]["benchmark"]
        for name in ("speedup-eager", "speedup-compiled")
        if parts.get(name, {}).get("benchmark")
    ]
    if benchmarks and not result["dry_run"]:
        sys.path.insert(0, str(ROOT / "eval"))
        from benchmark_sd15_speedup import results_section

        merged = {**benchmarks[0], "rows": [row for benchmark in benchmarks for row in benchmark["rows"]]}
        merged["command"] = (
            " and ".join(benchmark["command"] for benchmark in benchmarks) + " (run by eval/gpu_check.py)"
        )
        merged["wall_s"] = sum(benchmark["wall_s"] for benchmark in benchmarks)
        merged["modes"] = [mode for benchmark in benchmarks for mode in benchmark["modes"]]
        result_sections["sd15-speedup-gpu"] = results_section(merged)
    for name in ("speedup-eager", "speedup-compiled"):
        part = parts.get(name)
        if part and not part.get("ok") and not part.get("skipped"):
            result_sections["gpu-check"] += (
                f"\n\n{name}: did not finish (exit {part['returncode']}, timed out: {part['timed_out']})."
            )
    return result_sections


def apply_sections(json_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "eval"))
    from results_file import write_section

    result = json.loads(Path(json_path).read_text())
    if result["dry_run"]:
        raise SystemExit("a dry run's numbers do not go into docs/results.md")
    for key, markdown in result["sections"].items():
        write_section(key, markdown)
        print(f"wrote section {key} into docs/results.md")


# -------------------------------------------------------------------------------------------------------- main


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU: every part's code path")
    parser.add_argument("--out-dir", default="eval/results", help="where gpu_check.json, gpu_check.md and logs go")
    parser.add_argument(
        "--budget-s",
        type=float,
        help="seconds for all parts together (default 480; a dry run, slow on a shared CPU: 3600)",
    )
    parser.add_argument("--parts", default=",".join(SHARES), help=f"comma-separated, of: {', '.join(SHARES)}")
    parser.add_argument("--rounds", type=int, default=8, help="timing rounds per model in the speedup parts")
    parser.add_argument("--no-results-md", action="store_true", help="leave docs/results.md alone")
    parser.add_argument("--download-wheels", action="store_true", help="fetch .gpu-wheels/ (here, not there)")
    parser.add_argument("--apply", metavar="JSON", help="write a GPU check's sections into docs/results.md")
    parser.add_argument("--ld-pruner-child", metavar="ALLOCATION", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    parser.add_argument("--progress", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    args.budget_s = args.budget_s or (3600 if args.dry_run else sum(SHARES.values()))
    if args.download_wheels:
        return download_wheels()
    packages = bootstrap()
    if args.ld_pruner_child:
        return ld_pruner_child(args)
    if args.apply:
        return apply_sections(Path(args.apply))
    started = time.perf_counter()
    out_dir = Path(args.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [name.strip() for name in args.parts.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SHARES]
    if unknown:
        raise SystemExit(f"unknown part {', '.join(unknown)}; parts: {', '.join(SHARES)}")
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA GPU; run with --dry-run for the CPU code paths")
    result = {
        "command": "python eval/gpu_check.py " + " ".join(sys.argv[1:]),
        "dry_run": args.dry_run,
        "budget_s": args.budget_s,
        "hardware": hardware(),
        "packages": packages,
        "preflight": preflight(),
        "parts": {},
    }
    if result["preflight"]["unsatisfied"]:
        print("unsatisfied requirements: " + "; ".join(result["preflight"]["unsatisfied"]), flush=True)
    total_share = sum(SHARES[name] for name in chosen)
    spent = 0.0
    for index, name in enumerate(chosen):
        # A part's limit: its share of the budget plus what earlier parts left unused; the last part gets the rest.
        shares_so_far = sum(SHARES[part] for part in chosen[: index + 1]) / total_share * args.budget_s
        limit = args.budget_s - spent if index == len(chosen) - 1 else shares_so_far - spent
        print(f"== {name} (limit {limit:.0f} s)", flush=True)
        part_started = time.perf_counter()
        if name == "tests":
            part = part_tests(args, limit, out_dir)
        elif name.startswith("speedup"):
            part = part_speedup(args, limit, out_dir, compiled=name == "speedup-compiled")
        else:
            part = part_ld_pruner(args, limit, out_dir, name)
        spent += time.perf_counter() - part_started
        result["parts"][name] = part
        status = "skipped: " + part["skipped"] if part.get("skipped") else ("ok" if part.get("ok") else "NOT ok")
        print(f"   {status} ({time.perf_counter() - part_started:.0f} s)", flush=True)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["sections"] = sections(result)
    (out_dir / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))
    markdown = "\n\n".join(result["sections"].values())
    (out_dir / "gpu_check.md").write_text(markdown + "\n")
    print(markdown)
    if not args.dry_run and not args.no_results_md:
        apply_sections(out_dir / "gpu_check.json")
    print(f"wrote {out_dir / 'gpu_check.json'} and gpu_check.md in {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
