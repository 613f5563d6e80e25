"""`python -m diffprune` (also what `accelerate launch -m diffprune` runs)."""

import sys

from diffprune.cli import main

sys.exit(main())
