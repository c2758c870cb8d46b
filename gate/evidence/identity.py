"""Keyless signer identity: what a Fulcio certificate says, and whether the policy trusts it.

The issuer is compared exactly; the subject (any SAN: URI, email or Sigstore
other-name) as an anchored glob or an anchored regular expression. Fulcio OIDs:
https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from gate.errors import IdentityError
from gate.policy.glob import glob_match
from gate.policy.model import KeylessIdentity

_FULCIO = "1.3.6.1.4.1.57264.1."
OID_ISSUER_V1 = ObjectIdentifier(_FULCIO + "1")  # raw string (deprecated)
OID_ISSUER_V2 = ObjectIdentifier(_FULCIO + "8")  # DER UTF8String
_OTHERNAME_SAN = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")

#: The DER UTF8String extensions, by a short name used in messages and reports.
CLAIM_OIDS: Mapping[str, ObjectIdentifier] = MappingProxyType(
    {
        "buildSignerURI": ObjectIdentifier(_FULCIO + "9"),
        "buildSignerDigest": ObjectIdentifier(_FULCIO + "10"),
        "runnerEnvironment": ObjectIdentifier(_FULCIO + "11"),
        "sourceRepositoryURI": ObjectIdentifier(_FULCIO + "12"),
        "sourceRepositoryDigest": ObjectIdentifier(_FULCIO + "13"),
        "sourceRepositoryRef": ObjectIdentifier(_FULCIO + "14"),
        "sourceRepositoryIdentifier": ObjectIdentifier(_FULCIO + "15"),
        "sourceRepositoryOwnerURI": ObjectIdentifier(_FULCIO + "16"),
        "sourceRepositoryOwnerIdentifier": ObjectIdentifier(_FULCIO + "17"),
        "buildConfigURI": ObjectIdentifier(_FULCIO + "18"),
        "buildConfigDigest": ObjectIdentifier(_FULCIO + "19"),
        "buildTrigger": ObjectIdentifier(_FULCIO + "20"),
        "runInvocationURI": ObjectIdentifier(_FULCIO + "21"),
        "sourceRepositoryVisibilityAtSigning": ObjectIdentifier(_FULCIO + "22"),
    }
)


@dataclass(frozen=True)
class CertificateIdentity:
    """The identity claims of a Fulcio certificate."""

    sans: tuple[str, ...]
    issuer: str | None
    claims: Mapping[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return self.sans[0] if self.sans else ""


def _der_utf8(value: bytes) -> str | None:
    # A DER UTF8String: tag 0x0C, a short or long length, the bytes.
    if len(value) < 2 or value[0] != 0x0C:
        return None
    n = value[1]
    offset = 2
    if n & 0x80:
        count = n & 0x7F
        if count == 0 or count > 4 or len(value) < 2 + count:
            return None
        n = int.from_bytes(value[2 : 2 + count], "big")
        offset = 2 + count
    if len(value) != offset + n:
        return None
    try:
        return value[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _extension_bytes(cert: x509.Certificate, oid: ObjectIdentifier) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    value = getattr(ext, "value", None)
    return value if isinstance(value, bytes) else None


def read_identity(cert: x509.Certificate) -> CertificateIdentity:
    """Read the SANs, the OIDC issuer and the GitHub claims of ``cert``.

    Raises :class:`IdentityError` when the two issuer extensions disagree: a
    certificate must not carry two answers to "who vouched for this identity".
    """
    sans: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
        sans.extend(san.get_values_for_type(x509.RFC822Name))
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id == _OTHERNAME_SAN:
                decoded = _der_utf8(other.value)
                if decoded is not None:
                    sans.append(decoded)
    except x509.ExtensionNotFound:
        pass
    v1 = _extension_bytes(cert, OID_ISSUER_V1)
    v2 = _extension_bytes(cert, OID_ISSUER_V2)
    issuer_v1 = v1.decode("utf-8", "replace") if v1 is not None else None
    issuer_v2 = _der_utf8(v2) if v2 is not None else None
    if issuer_v1 is not None and issuer_v2 is not None and issuer_v1 != issuer_v2:
        raise IdentityError(
            "the certificate carries two different OIDC issuers",
            reason="issuer-mismatch",
            found=f"{issuer_v1!r} (1.3.6.1.4.1.57264.1.1) and {issuer_v2!r} (…1.8)",
        )
    claims: dict[str, str] = {}
    for name, oid in CLAIM_OIDS.items():
        raw = _extension_bytes(cert, oid)
        if raw is not None:
            decoded = _der_utf8(raw)
            if decoded is not None:
                claims[name] = decoded
    return CertificateIdentity(tuple(sans), issuer_v2 or issuer_v1, MappingProxyType(claims))


def subject_matches(expected: KeylessIdentity, san: str) -> bool:
    if expected.subject is not None:
        return glob_match(expected.subject, san)
    if expected.subject_regexp is not None:
        return re.fullmatch(expected.subject_regexp, san) is not None
    return False


def check_identity(identity: CertificateIdentity, expected: KeylessIdentity) -> None:
    """Raise :class:`IdentityError` unless ``identity`` is what ``expected`` trusts."""
    if identity.issuer != expected.issuer:
        raise IdentityError(
            "the signing certificate was issued for another OIDC issuer",
            reason="issuer-mismatch",
            found=repr(identity.issuer),
            expected=repr(expected.issuer),
            hint="check the key's keyless.issuer in the policy (it is compared exactly)",
        )
    if not any(subject_matches(expected, san) for san in identity.sans):
        want = expected.subject or f"/{expected.subject_regexp}/"
        raise IdentityError(
            "the signing certificate's identity is not trusted by the policy",
            reason="identity-mismatch",
            found=", ".join(identity.sans) or "no subject alternative name",
            expected=want,
        )
    gh = expected.github
    if gh is None:
        return
    checks: list[tuple[str, str | None, str, bool]] = []
    if gh.repository is not None:
        want_repo = gh.repository
        if "://" not in want_repo:
            want_repo = f"https://github.com/{want_repo}"
        have = identity.claims.get("sourceRepositoryURI")
        checks.append(("sourceRepositoryURI", have, want_repo, have == want_repo))
    if gh.ref is not None:
        have = identity.claims.get("sourceRepositoryRef")
        checks.append(
            ("sourceRepositoryRef", have, gh.ref, have is not None and glob_match(gh.ref, have))
        )
    if gh.workflow is not None:
        have = identity.claims.get("buildSignerURI")
        checks.append(
            (
                "buildSignerURI",
                have,
                gh.workflow,
                have is not None and glob_match(gh.workflow, have),
            )
        )
    if gh.runner_environment is not None:
        have = identity.claims.get("runnerEnvironment")
        checks.append(
            ("runnerEnvironment", have, gh.runner_environment, have == gh.runner_environment)
        )
    for name, have, want, ok in checks:
        if not ok:
            raise IdentityError(
                f"the signing certificate's GitHub claim {name} is not what the policy requires",
                reason="identity-mismatch",
                found=repr(have) if have is not None else "absent",
                expected=repr(want),
            )


class KeylessPolicy:
    """A ``sigstore.verify.policy.VerificationPolicy`` built from a policy key.

    ``Verifier.verify_*`` calls ``verify(cert)``; we raise sigstore's own error
    type so that the caller sees one failure path, and keep our reason code on it.
    """

    def __init__(self, expected: KeylessIdentity) -> None:
        self.expected = expected
        self.failure: IdentityError | None = None

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError as SigstoreVerificationError

        try:
            check_identity(read_identity(cert), self.expected)
        except IdentityError as e:
            self.failure = e
            raise SigstoreVerificationError(e.message) from e
