"""Make the example's app module importable, whichever directory pytest starts from."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLE_DIR = str(Path(__file__).resolve().parents[1])
if EXAMPLE_DIR not in sys.path:
    sys.path.insert(0, EXAMPLE_DIR)
