"""Fulcio certificates for legacy keyless signatures: chain, validity time, SCT.

Pure: certificates and the trust root in, no network. The steps follow the
Sigstore client spec (and sigstore-python ``Verifier._verify_common_signing_cert``):

1. The leaf was valid at the trusted signing time (Rekor's ``integratedTime``,
   itself verified by ``rekor.verify_set``): a short-lived certificate used
   after it expired is ``certificate-expired`` (a stolen ephemeral key).
2. The leaf chains to a Fulcio CA of the trust root *at that time*; only the
   trust root's certificates are anchors or intermediates. The chain a
   signature carries (``dev.sigstore.cosign/chain``) is never trusted: a
   forger controls it.
3. The leaf is a code-signing certificate (key usage digitalSignature,
   extended key usage codeSigning).
4. The embedded SCT (RFC 6962 §3.2, precertificate entry) verifies with a CT
   log key of the trust root: the certificate was publicly logged, so a
   mis-issuance by the CA would be visible.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import (
    ExtendedKeyUsage,
    KeyUsage,
    PrecertificateSignedCertificateTimestamps,
)
from cryptography.x509.certificate_transparency import LogEntryType, SignedCertificateTimestamp
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import (
    VerificationError as X509VerificationError,
)

from gate.errors import SignatureError, VerificationError
from gate.evidence.rekor import verify_log_signature
from gate.sources.trustroot import TrustRoot


class CertificateExpiredError(VerificationError):
    reason = "certificate-expired"


class UntrustedCertificateError(VerificationError):
    reason = "untrusted-signer"


class SctError(VerificationError):
    reason = "sct-invalid"


def load_certificate(pem: str | bytes) -> x509.Certificate:
    """The leaf of a ``dev.sigstore.cosign/certificate`` annotation."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise SignatureError("the signing certificate is not a PEM certificate") from e


def check_validity_at(cert: x509.Certificate, at: dt.datetime) -> None:
    """Step 1 (inclusive bounds, as RFC 5280 and sigstore-python)."""
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise CertificateExpiredError(
            "the signing certificate was not valid when the signature was logged",
            found=f"logged at {at.isoformat()}",
            expected=f"between {cert.not_valid_before_utc.isoformat()} and "
            f"{cert.not_valid_after_utc.isoformat()}",
            hint="a signature made with an expired (possibly leaked) ephemeral key",
        )


def verify_chain(
    cert: x509.Certificate, root: TrustRoot, at: dt.datetime
) -> list[x509.Certificate]:
    """Step 2: the chain (leaf excluded, issuer first) to a trust-root CA valid at ``at``."""
    anchors = [c for ca in root.authorities if ca.validity.contains(at) for c in ca.chain]
    if not anchors:
        raise UntrustedCertificateError(
            "no Fulcio CA of the trust root was valid at the signing time",
            found=at.isoformat(),
            hint=f"trust root: {root.source}",
        )
    # Fulcio leaves carry codeSigning, not clientAuth: relax only the EKU rule.
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        chain = list(verifier.verify(cert, []).chain[1:])
    except (X509VerificationError, x509.UnsupportedGeneralNameType, ValueError) as e:
        raise UntrustedCertificateError(
            "the signing certificate does not chain to a Fulcio CA of the trust root",
            found=f"issuer {cert.issuer.rfc4514_string()}: {e}",
            hint=f"trust root: {root.source}",
        ) from e
    try:
        usage = cert.extensions.get_extension_for_class(KeyUsage).value
        eku = cert.extensions.get_extension_for_class(ExtendedKeyUsage).value
    except x509.ExtensionNotFound as e:
        raise UntrustedCertificateError("the signing certificate lacks key usages") from e
    if not usage.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise UntrustedCertificateError("the signing certificate is not for code signing")
    return chain


def _issuer_for_sct(chain: list[x509.Certificate]) -> x509.Certificate:
    issuer = chain[0]
    try:
        eku = issuer.extensions.get_extension_for_class(ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY in eku and len(chain) > 1:
            return chain[1]  # a precertificate signing certificate (RFC 6962 §3.1)
    except x509.ExtensionNotFound:
        pass
    return issuer


def _signed_data(
    sct: SignedCertificateTimestamp, cert: x509.Certificate, issuer_key_hash: bytes
) -> bytes:
    # RFC 6962 §3.2 digitally-signed struct for a precert_entry: version,
    # signature_type certificate_timestamp(0), timestamp (ms), entry_type,
    # issuer_key_hash[32], TBSCertificate (SCT list removed) as opaque<1..2^24-1>,
    # extensions as opaque<0..2^16-1>.
    tbs = cert.tbs_precertificate_bytes
    ts = int(sct.timestamp.replace(tzinfo=dt.UTC).timestamp() * 1000)
    return (
        struct.pack("!BBQH", sct.version.value, 0, ts, LogEntryType.PRE_CERTIFICATE.value)
        + issuer_key_hash
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack("!H", len(sct.extension_bytes))
        + sct.extension_bytes
    )


def verify_sct(cert: x509.Certificate, chain: list[x509.Certificate], root: TrustRoot) -> None:
    """Step 4: one embedded SCT, by a CT log of the trust root, over this precertificate."""
    try:
        scts = list(
            cert.extensions.get_extension_for_class(PrecertificateSignedCertificateTimestamps).value
        )
    except x509.ExtensionNotFound as e:
        raise SctError("the signing certificate has no embedded SCT") from e
    if not scts:
        raise SctError("the signing certificate has no embedded SCT")
    if not chain:
        raise SctError("the signing certificate's issuer is unknown")
    issuer = _issuer_for_sct(chain)
    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).digest()
    problems: list[str] = []
    for sct in scts:
        if sct.entry_type != LogEntryType.PRE_CERTIFICATE:
            problems.append("not a precertificate SCT")
            continue
        if not isinstance(sct.signature_hash_algorithm, hashes.SHA256):
            problems.append("SCT hash is not SHA-256")
            continue
        key = root.ctlog(sct.log_id)
        if key is None:
            problems.append(f"SCT from a CT log the trust root does not list ({sct.log_id.hex()})")
            continue
        if verify_log_signature(key, sct.signature, _signed_data(sct, cert, issuer_key_hash)):
            return
        problems.append("SCT signature does not verify")
    raise SctError(
        "the signing certificate's SCT does not verify against a trusted CT log",
        found="; ".join(problems),
        hint=f"trust root: {root.source}",
    )


def verify_certificate(
    cert: x509.Certificate, root: TrustRoot, at: dt.datetime
) -> list[x509.Certificate]:
    """Steps 1-4 at the trusted time ``at``; returns the verified chain (issuer first)."""
    check_validity_at(cert, at)
    chain = verify_chain(cert, root, at)
    verify_sct(cert, chain, root)
    return chain
