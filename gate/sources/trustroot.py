"""Sigstore trust roots: the policy's ``trusted_root.json`` or the public-good root, offline.

A trust root (``application/vnd.dev.sigstore.trustedroot+json;version=0.1``,
sigstore protobuf-specs ``TrustedRoot``) names the Fulcio CAs, the Rekor log
keys, the CT log keys and the timestamp authorities, each with a validity
window. It is trust material: it comes from the policy (``trustRoots.sigstore``)
or from the copy shipped inside the ``sigstore`` wheel, never from the source
or a registry, and never from the network (no TUF refresh at verify time).

We parse it twice from the same bytes: into :class:`TrustRoot` (frozen
dataclasses our own legacy verifiers use) and, on demand, into sigstore's
``TrustedRoot`` for ``sigstore.verify.Verifier``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gate.errors import GateError, PolicyError
from gate.evidence.encoding import b64_field
from gate.policy.loader import LoadedPolicy

if TYPE_CHECKING:  # pragma: no cover
    from sigstore.models import TrustedRoot

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
PUBLIC_GOOD = "public-good"
_PUBLIC_GOOD_DIR = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
_MAX_ROOT_BYTES = 4 * 1024 * 1024

LogPublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class Validity:
    """A ``TimeRange``: closed interval, ``end`` absent means still valid."""

    start: dt.datetime | None
    end: dt.datetime | None

    def contains(self, at: dt.datetime) -> bool:
        if self.start is not None and at < self.start:
            return False
        return self.end is None or at <= self.end


@dataclass(frozen=True)
class LogKey:
    """A transparency log (Rekor) or CT log key."""

    base_url: str
    log_id: bytes  # SHA-256 of the key's SPKI DER, as the trust root names it
    public_key: LogPublicKey
    validity: Validity


@dataclass(frozen=True)
class CertificateAuthority:
    """A Fulcio CA: its chain, nearest the leaf first, ending with the root."""

    uri: str
    chain: tuple[x509.Certificate, ...]
    validity: Validity


@dataclass(frozen=True)
class TrustRoot:
    source: str  # a path, or "public-good"
    raw: bytes = field(repr=False)
    tlogs: tuple[LogKey, ...]
    ctlogs: tuple[LogKey, ...]
    authorities: tuple[CertificateAuthority, ...]

    def tlog(self, log_id: bytes) -> LogKey | None:
        return next((k for k in self.tlogs if k.log_id == log_id), None)

    def ctlog(self, log_id: bytes) -> LogKey | None:
        return next((k for k in self.ctlogs if k.log_id == log_id), None)

    @cached_property
    def sigstore(self) -> TrustedRoot:
        """The same bytes as sigstore-python's ``TrustedRoot`` (for its ``Verifier``)."""
        from sigstore.models import TrustedRoot
        from sigstore_models.trustroot import v1 as trustroot_v1

        return TrustedRoot(trustroot_v1.TrustedRoot.from_json(self.raw))


def _time(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PolicyError(f"trust root: {where} is not an RFC 3339 time")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise PolicyError(f"trust root: {where} is not an RFC 3339 time: {value!r}") from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _validity(doc: Any, where: str) -> Validity:
    if not isinstance(doc, dict):
        # A key without a validity window would be trusted forever, for any
        # time an attacker claims: refuse it (conformance:
        # trust-root-tlog-missing-validity-start_fail).
        raise PolicyError(f"trust root: {where}.validFor is missing")
    start = _time(doc.get("start"), f"{where}.validFor.start")
    if start is None:
        raise PolicyError(f"trust root: {where}.validFor.start is missing")
    return Validity(start, _time(doc.get("end"), f"{where}.validFor.end"))


def _b64(value: Any, where: str) -> bytes:
    return b64_field(value, where, lambda msg: PolicyError(f"trust root: {msg}"))


def _log_key(doc: Any, where: str) -> LogKey | None:
    if not isinstance(doc, dict):
        raise PolicyError(f"trust root: {where} is not an object")
    pk = doc.get("publicKey")
    if not isinstance(pk, dict) or "rawBytes" not in pk:
        raise PolicyError(f"trust root: {where}.publicKey.rawBytes is missing")
    der = _b64(pk["rawBytes"], f"{where}.publicKey.rawBytes")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None  # a key type we cannot use: it simply verifies nothing
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        return None
    log_id_doc = doc.get("logId")
    if isinstance(log_id_doc, dict) and "keyId" in log_id_doc:
        log_id = _b64(log_id_doc["keyId"], f"{where}.logId.keyId")
    else:
        log_id = hashlib.sha256(der).digest()
    return LogKey(
        base_url=str(doc.get("baseUrl", "")),
        log_id=log_id,
        public_key=key,
        validity=_validity(pk.get("validFor"), f"{where}.publicKey"),
    )


def _authority(doc: Any, where: str) -> CertificateAuthority:
    if not isinstance(doc, dict):
        raise PolicyError(f"trust root: {where} is not an object")
    certs = (doc.get("certChain") or {}).get("certificates")
    if not isinstance(certs, list) or not certs:
        raise PolicyError(f"trust root: {where}.certChain.certificates is empty")
    chain: list[x509.Certificate] = []
    for i, c in enumerate(certs):
        der = _b64((c or {}).get("rawBytes"), f"{where}.certChain.certificates[{i}]")
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError as e:
            raise PolicyError(f"trust root: {where}.certChain.certificates[{i}]: {e}") from e
    return CertificateAuthority(
        str(doc.get("uri", "")), tuple(chain), _validity(doc.get("validFor"), where)
    )


def parse_trust_root(data: bytes, source: str) -> TrustRoot:
    """Parse a ``trusted_root.json``; raise :class:`PolicyError` if it is not one."""
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise PolicyError(f"trust root {source} is not JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("mediaType") != TRUSTED_ROOT_MEDIA_TYPE:
        raise PolicyError(
            f"trust root {source} is not a Sigstore trusted root",
            found=repr(doc.get("mediaType")) if isinstance(doc, dict) else type(doc).__name__,
            expected=TRUSTED_ROOT_MEDIA_TYPE,
        )

    def logs(name: str) -> tuple[LogKey, ...]:
        out = []
        for i, entry in enumerate(doc.get(name) or []):
            key = _log_key(entry, f"{name}[{i}]")
            if key is not None:
                out.append(key)
        return tuple(out)

    authorities = tuple(
        _authority(a, f"certificateAuthorities[{i}]")
        for i, a in enumerate(doc.get("certificateAuthorities") or [])
    )
    return TrustRoot(source, data, logs("tlogs"), logs("ctlogs"), authorities)


def public_good_bytes() -> bytes:
    """The public-good root shipped in the installed ``sigstore`` wheel (no network)."""
    ref = resources.files("sigstore._store").joinpath(_PUBLIC_GOOD_DIR, "trusted_root.json")
    return ref.read_bytes()


_CACHE: dict[tuple[str, bytes], TrustRoot] = {}


def load_trust_root(path: str | Path | None) -> TrustRoot:
    """The trust root at ``path``, or the public-good root when ``path`` is ``None``.

    Parsed once per process and content (keyed by the bytes' SHA-256).
    """
    source = PUBLIC_GOOD if path is None else str(path)
    if path is None:
        data = public_good_bytes()
    else:
        p = Path(path)
        try:
            if p.stat().st_size > _MAX_ROOT_BYTES:
                raise PolicyError(f"trust root {p} is larger than {_MAX_ROOT_BYTES} bytes")
            data = p.read_bytes()
        except OSError as e:
            raise PolicyError(
                f"cannot read the Sigstore trust root {p}: {e.strerror or e}",
                hint="check spec.trustRoots.sigstore (or --trusted-root)",
            ) from e
    key = (source, hashlib.sha256(data).digest())
    cached = _CACHE.get(key)
    if cached is None:
        cached = _CACHE[key] = parse_trust_root(data, source)
    return cached


def policy_trust_root_path(policy: LoadedPolicy) -> Path | None:
    """``spec.trustRoots.sigstore``, a relative path read beside the policy file.

    Never relative to the working directory: that may be the source being verified,
    and a repository must not be able to supply its own trust root.
    """
    configured = policy.policy.spec.trust_roots.sigstore
    if configured is None:
        return None
    path = Path(configured)
    return path if path.is_absolute() else Path(policy.path).parent / path


def lazy_policy_trust_root(policy: LoadedPolicy) -> Callable[[], TrustRoot]:
    """A loader for the policy's trust root that reads it at most once, on first use.

    A policy with only key-based signers never needs it, so a broken or absent
    trust root must not fail such a run; when it is needed, every caller sees the
    same root, or the same error.
    """
    box: dict[str, TrustRoot | GateError] = {}

    def load() -> TrustRoot:
        if "root" not in box:
            try:
                box["root"] = load_trust_root(policy_trust_root_path(policy))
            except GateError as e:
                box["root"] = e
        got = box["root"]
        if isinstance(got, GateError):
            raise got
        return got

    return load
