"""--device and --dtype, the same flags with the same defaults on every command that runs a model."""

from __future__ import annotations

from diffprune.devices import DTYPES, resolve_device, torch_dtype
from diffprune.distributed import process_state


def add_device_options(parser, dtype_help: str) -> None:
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: cuda if a GPU is visible, else cpu)"
    )
    parser.add_argument("--dtype", choices=list(DTYPES), default=None, help=dtype_help + " (fp16 needs a GPU)")


def device_and_dtype_from_args(args, dtype_on_gpu: str | None = None):
    """(device, torch dtype or None), checked before any work: a bad combination is a one-line error (exit 2).
    The process group (under accelerate launch) forms on that device, so `--device cpu` talks over gloo.
    dtype_on_gpu: without --dtype, run in this precision on a GPU and in fp32 elsewhere (the recipes); None: as
    the model is stored."""
    device = resolve_device(args.device)
    if args.dtype is None and dtype_on_gpu is not None:
        args.dtype = dtype_on_gpu if device.startswith("cuda") else "fp32"
    dtype = torch_dtype(args.dtype, device)
    process_state(device)
    return device, dtype
