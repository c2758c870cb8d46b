"""The ARTIFACT argument of the single-artifact verbs: a file, or ``algorithm:hex``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from pathlib import Path

from gate.errors import UsageError

MAX_ARTIFACT_BYTES = 1024 * 1024 * 1024
_DIGEST = re.compile(r"(sha256|sha512):([0-9a-f]{64}|[0-9a-f]{128})")
_HEX_LEN = {"sha256": 64, "sha512": 128}


def given_digest(text: str, algorithms: Collection[str] = ("sha256",)) -> tuple[str, str] | None:
    """``(algorithm, hex)`` when ``text`` is a digest of an accepted algorithm, else ``None``."""
    m = _DIGEST.fullmatch(text)
    if m is None or m.group(1) not in algorithms or len(m.group(2)) != _HEX_LEN[m.group(1)]:
        return None
    return m.group(1), m.group(2)


def _open_checked(path: Path) -> None:
    if path.stat().st_size > MAX_ARTIFACT_BYTES:
        raise UsageError(f"{path} is larger than 1 GiB; pass sha256:<hex> instead")


def read_artifact(text: str) -> bytes:
    """The bytes of the artifact file ``text`` (size-capped; usage error if unreadable)."""
    path = Path(text)
    try:
        _open_checked(path)
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the artifact {path}: {e.strerror or e}") from e


def artifact_digest(
    text: str, algorithm: str = "sha256", accept: Collection[str] = ("sha256",)
) -> str:
    """``text`` itself when it is an accepted digest, else ``algorithm:`` over the file."""
    if given_digest(text, accept) is not None:
        return text
    path = Path(text)
    try:
        _open_checked(path)
        h = hashlib.new(algorithm)
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise UsageError(f"cannot read the artifact {path}: {e.strerror or e}") from e
    return f"{algorithm}:{h.hexdigest()}"
