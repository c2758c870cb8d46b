"""Where the upstream vectors are: ``$GATE_VECTORS`` or ``../shared/vectors`` (never copied)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VECTORS = Path(os.environ.get("GATE_VECTORS", REPO.parent / "shared" / "vectors"))


def absent(what: Path, arity: int = 1) -> list[object]:
    """One visibly skipped case when the vectors are not there (``arity``: parameter names)."""
    return [
        pytest.param(
            *([None] * arity),
            marks=pytest.mark.skip(reason=f"vectors not found at {what} (set GATE_VECTORS)"),
            id="vectors-absent",
        )
    ]


def run_verb(
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: Sequence[str],
) -> int:
    """Run one CLI verb module without the top-level parser (its own flags only)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))
