"""Run every benchmark in bench/ and print their numbers (``make bench``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

here = Path(__file__).parent
# The benchmarks build their worlds with testkit/, which is not installed.
env = {**os.environ, "PYTHONPATH": str(here.parent)}
failed = 0
for script in sorted(here.glob("bench_*.py")):
    print(f"== {script.name}", flush=True)
    rc = subprocess.call([sys.executable, str(script)], cwd=here.parent, env=env)
    failed += rc != 0
sys.exit(1 if failed else 0)
