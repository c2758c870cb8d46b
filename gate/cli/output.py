"""Writing results: report files, manifests (only on allow), text to stderr."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from gate.engine import GateResult


def write_atomic(path: str | Path, data: str) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename, so a reader never
    sees half a file (a consumer must not apply a truncated manifest set)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def emit(
    result: GateResult,
    *,
    fmt: str,
    report_file: str | None,
    manifests_file: str | None,
    verbose: bool = False,
) -> int:
    report = result.report
    if report_file:
        write_atomic(report_file, report.dumps())
    if manifests_file:
        if result.manifests is not None:
            if manifests_file == "-":
                sys.stdout.write(result.manifests)
            else:
                write_atomic(manifests_file, result.manifests)
        elif manifests_file != "-":
            # Never leave an older allow's manifests behind a deny.
            Path(manifests_file).unlink(missing_ok=True)
    if fmt == "json":
        sys.stdout.write(report.dumps())
    sys.stderr.write(report.render_text(verbose=verbose))
    return report.exit_code
