"""Run every benchmark in bench/ and print their numbers (``make bench``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

here = Path(__file__).parent
failed = 0
for script in sorted(here.glob("bench_*.py")):
    print(f"== {script.name}", flush=True)
    rc = subprocess.call([sys.executable, str(script)], cwd=here.parent)
    failed += rc != 0
sys.exit(1 if failed else 0)
