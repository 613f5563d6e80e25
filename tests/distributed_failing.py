"""Run by test_distributed.py under `accelerate launch` with 2 processes: the second process fails, so the test can
check that the failure shows what that process wrote to its stderr."""

import os
import sys

if __name__ == "__main__":
    if os.environ.get("LOCAL_RANK") == "1":
        print("rank 1 gives up on purpose", file=sys.stderr)
        sys.exit(3)
