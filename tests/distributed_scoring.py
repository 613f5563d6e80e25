"""Run by test_distributed.py under `accelerate launch --multi_gpu --num_processes 2` on a CPU machine: score the tiny DDPM's units
with the processes sharing the candidates, and let the main process write the scores."""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import tiny_ddpm_pipeline  # noqa: E402

from diffprune.criteria import ScoringContext, get_criterion  # noqa: E402
from diffprune.criteria.score_store import ScoreStore  # noqa: E402
from diffprune.models.adapters import CalibrationSettings, adapter_for  # noqa: E402
from diffprune.structure.costs import count_macs  # noqa: E402
from diffprune.structure.selection import Budget  # noqa: E402
from diffprune.structure.units import find_units  # noqa: E402


def score(method: str, store_path: str | None) -> dict:
    """`method` is a criterion name; "ld-pruner-adaptive" is LD-Pruner's adaptive allocation at 0.7 of the MACs
    (the processes share the candidates and agree on which get more samples)."""
    torch.set_num_threads(1)
    pipeline = tiny_ddpm_pipeline()
    adaptive = method == "ld-pruner-adaptive"
    calibration = CalibrationSettings(num_samples=12 if adaptive else 4, num_inference_steps=3, show_progress=False)
    adapter = adapter_for(pipeline, calibration)
    units = find_units(pipeline.unet)
    context = ScoringContext(adapter, units, ScoreStore(store_path, {"method": method}), show_progress=False)
    if adaptive:
        context.budget, context.total_costs = Budget(keep_macs=0.7), {"macs": count_macs(pipeline.unet)}
        return get_criterion("ld-pruner", allocation="adaptive").score(context, units, [], 0)
    return get_criterion(method).score(context, units, [], 0)


def report_teardown_at_exit() -> None:
    """Registered before diffprune forms the group, so it runs after diffprune's own exit handler (atexit runs
    handlers last in, first out): it sees what that handler left."""
    import atexit

    import torch.distributed

    atexit.register(lambda: print(f"process group left at exit: {torch.distributed.is_initialized()}", flush=True))


if __name__ == "__main__":
    report_teardown_at_exit()
    method, output = sys.argv[1], sys.argv[2]
    scores = score(method, output + ".store.json")
    from diffprune.distributed import process_state

    state = process_state()
    if state.is_main_process:
        Path(output).write_text(json.dumps({"scores": scores, "num_processes": state.num_processes}))
