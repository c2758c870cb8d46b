"""Opening the cosign key files a policy names (VSA signing, Flux publishing)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gate.errors import UsageError
from gate.policy.loader import LoadedPolicy
from gate.signing.errors import KeyFileError
from gate.signing.keys import load_private_key
from gate.signing.signer import Signer

MAX_KEY_BYTES = 64 * 1024


def open_policy_key(
    policy: LoadedPolicy,
    configured: str,
    *,
    password_env: str,
    environ: Mapping[str, str],
    purpose: str,
    field: str,
) -> tuple[Signer, Path]:
    """Open the cosign key file ``configured`` (relative: beside the policy file).

    Every failure is a usage error (exit 2) that names the key and what to do;
    callers open keys before any verification work, so an operator mistake never
    surfaces after a decision was made. ``purpose`` ("VSA signing") and ``field``
    ("spec.output.vsa.key") only shape the messages.
    """
    path = Path(configured)
    if not path.is_absolute():
        path = Path(policy.path).parent / path
    password = environ.get(password_env)
    if password is None:
        raise UsageError(
            f"${password_env} is not set; it opens the {purpose} key {path}",
            hint=f"export {password_env} (an empty value for a key without a password)",
        )
    try:
        with path.open("rb") as f:
            pem = f.read(MAX_KEY_BYTES + 1)
    except OSError as e:
        raise KeyFileError(
            f"cannot read the {purpose} key {path}: {e.strerror or e}",
            hint=f"{field} names a cosign key file; relative paths are beside the policy file",
        ) from e
    if len(pem) > MAX_KEY_BYTES:
        raise KeyFileError(f"the {purpose} key {path} is larger than {MAX_KEY_BYTES} bytes")
    # A wrong password is KeyPasswordError: a usage error too (exit 2).
    return Signer(load_private_key(pem, password.encode())), path
