"""in-toto layouts (classic Metablock, in-toto 3.x): verify a supply chain against its layout.

Pure apart from reading link files from a directory; the ``in-toto``
library does the work (layout signature by a policy key, expiry, every
step's threshold of functionary-signed links, artifact rules). Two refusals
come first:

- a layout with inspections is refused (``layout-inspections-refused``)
  unless the policy sets ``allowInspections: true``: an inspection is a
  command chosen by the layout's author that ``in_toto_verify`` runs in the
  verifier's process and working directory (in-toto spec §5.3);
- the layout must be signed by a key the POLICY names (never by a key the
  layout or a link carries).

Any failure inside in-toto is ``layout-invalid`` with its message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gate.evidence.statement import AttestationError
from gate.signing.keys import PublicKey


def sslib_key_dict(key: PublicKey) -> dict[str, Any]:
    """The in-toto key dict (with ``keyid``) of a policy public key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    if isinstance(key, ed25519.Ed25519PublicKey):
        scheme = "ed25519"
    elif isinstance(key, rsa.RSAPublicKey):
        scheme = "rsassa-pss-sha256"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        scheme = f"ecdsa-sha2-nistp{key.curve.key_size}"
    else:  # pragma: no cover - PublicKey is closed
        raise TypeError(f"unsupported key {type(key).__name__}")
    k = SSlibKey.from_crypto(key, scheme=scheme)
    doc: dict[str, Any] = k.to_dict()
    doc["keyid"] = k.keyid
    return doc


def load_layout(path: Path) -> Any:
    from in_toto.models.metadata import Metablock

    try:
        return Metablock.load(str(path))
    except Exception as e:  # in-toto raises many types for a bad file
        raise AttestationError(
            f"the in-toto layout {path} cannot be read: {type(e).__name__}: {e}",
            reason="malformed-statement",
        ) from e


def inspections(layout: Any) -> list[str]:
    return [str(getattr(i, "name", "?")) for i in (getattr(layout.signed, "inspect", None) or [])]


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def verify_layout(
    layout_path: Path,
    layout_keys: Mapping[str, PublicKey],
    link_dir: Path,
    *,
    allow_inspections: bool = False,
    workdir: Path | None = None,
) -> None:
    """Verify the supply chain in ``link_dir`` against the signed layout; deny on any failure.

    ``workdir``: where inspections run (and find the final product) when allowed.
    """
    layout = load_layout(layout_path)
    names = inspections(layout)
    if names and not allow_inspections:
        raise AttestationError(
            "the in-toto layout has inspections, which run commands its author chose",
            reason="layout-inspections-refused",
            found=", ".join(names),
            hint="remove the inspections, or set allowInspections: true for this rule if the "
            "layout's author may run commands in the gate",
        )
    from in_toto.verifylib import in_toto_verify

    key_dict = {d["keyid"]: d for d in (sslib_key_dict(k) for k in layout_keys.values())}
    try:
        with _cwd(workdir) if (names and workdir is not None) else contextlib.nullcontext():
            in_toto_verify(
                layout,
                key_dict,
                link_dir_path=str(link_dir),
                persist_inspection_links=False,
            )
    except Exception as e:  # in-toto's own exception tree: any of it is a deny
        raise AttestationError(
            f"the supply chain does not satisfy the in-toto layout: {type(e).__name__}: {e}",
            reason="layout-invalid",
        ) from e


__all__ = ["inspections", "load_layout", "sslib_key_dict", "verify_layout"]
