"""`python -m diffprune` (also what `accelerate launch -m diffprune` runs)."""

import sys

from .cli import main

sys.exit(main())
