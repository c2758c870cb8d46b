"""Writing results: report files, manifests (only on allow), text to stderr."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from gate.engine import GateResult
from gate.errors import UsageError
from gate.policy.loader import LoadedPolicy

if TYPE_CHECKING:  # pragma: no cover
    from gate.vsa_emit import VsaSigner


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


def prepare_vsa(path: str | None, policy: LoadedPolicy, *, flag: str) -> VsaSigner | None:
    """Before any verification: open the VSA key (exit 2 on a bad password or no key).

    An older run's VSA at ``path`` is removed first, so a run that stops here
    never leaves a previous decision's summary where this one's is expected.
    """
    if not path:
        return None
    if path == "-":
        raise UsageError(f"{flag} needs a file name; stdout carries the manifests or the report")
    from gate.vsa_emit import load_vsa_signer

    Path(path).unlink(missing_ok=True)
    return load_vsa_signer(policy, flag=flag)


def write_vsa(
    result: GateResult, policy: LoadedPolicy, signer: VsaSigner | None, path: str | None
) -> None:
    """Sign this decision's VSA (allow AND deny: a FAILED summary is a record too)."""
    if signer is None or not path:
        return
    from gate.vsa_emit import record, sign_vsa

    vsa = sign_vsa(result.report, policy, signer, result.manifests)
    write_atomic(path, vsa.envelope_json())
    record(result.report, vsa, path)


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
