"""X.509 side of the private Sigstore authority: a Fulcio-like CA, a CT log, leaf certificates.

Fulcio issues short-lived code-signing certificates whose identity is the SAN (an email
address or a URI) and whose OIDC claims sit in private extensions under
``1.3.6.1.4.1.57264.1`` (Fulcio ``docs/oid-info.md``). Every certificate carries an
embedded SCT (RFC 6962 section 3.3): the CT log signs the *precertificate* TBS, i.e. the
final TBS without the SCT-list extension, so a leaf is built twice (once to learn the
precertificate TBS, once with the real SCT). Test-only code: nothing here is shipped.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["p256", "p384"]

#: RFC 6962 section 3.3: the embedded SCT list extension.
SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
FULCIO_OID_PREFIX = "1.3.6.1.4.1.57264.1"
#: Legacy issuer extension: the raw string, no DER wrapping (Fulcio ``.1``, deprecated).
ISSUER_V1_OID = x509.ObjectIdentifier(f"{FULCIO_OID_PREFIX}.1")
#: Issuer extension from ``.8`` on: a DER UTF8String.
ISSUER_V2_OID = x509.ObjectIdentifier(f"{FULCIO_OID_PREFIX}.8")

_CURVES: dict[str, ec.EllipticCurve] = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}


def utc_now() -> datetime:
    """Whole-second UTC time: certificates and Rekor carry no sub-second precision."""
    return datetime.now(UTC).replace(microsecond=0)


def new_key(key_type: KeyType = "p256") -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA key on the curve Sigstore clients use (P-256 default, P-384 allowed)."""
    return ec.generate_private_key(_CURVES[key_type])


def spki_der(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """DER SubjectPublicKeyInfo, the input of every Sigstore/CT key id."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962 section 3.2 log id (also Rekor's logID): SHA-256 of the DER SPKI."""
    return hashlib.sha256(spki_der(key)).digest()


def der_length(n: int) -> bytes:
    """X.690 definite length octets."""
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_utf8string(value: str) -> bytes:
    """A DER UTF8String (tag 0x0C), the encoding of Fulcio extensions ``.8`` and later."""
    raw = value.encode()
    return b"\x0c" + der_length(len(raw)) + raw


def der_octet_string(raw: bytes) -> bytes:
    """A DER OCTET STRING (tag 0x04), the wrapper of the RFC 6962 SCT list."""
    return b"\x04" + der_length(len(raw)) + raw


def pem(cert: x509.Certificate) -> str:
    """PEM text of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class CertificateAuthority:
    """A two-level CA like Fulcio's: a self-signed root and the intermediate that issues leaves."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate

    @classmethod
    def create(cls, *, not_before: datetime, name: str = "fulcio") -> CertificateAuthority:
        """Mint root and intermediate (P-384, SHA-384, as Fulcio's public-good CA)."""
        root_key, intermediate_key = new_key("p384"), new_key("p384")
        root = _ca_certificate(
            _name(f"{name}-root"), root_key, root_key, _name(f"{name}-root"), not_before, 1
        )
        intermediate = _ca_certificate(
            _name(f"{name}-intermediate"), intermediate_key, root_key, root.subject, not_before, 0
        )
        return cls(root_key, root, intermediate_key, intermediate)

    @property
    def chain(self) -> tuple[x509.Certificate, x509.Certificate]:
        """Issuer chain of a leaf, nearest first (the order of a trusted root's certChain)."""
        return (self.intermediate, self.root)


def _ca_certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    not_before: datetime,
    path_length: int,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    return builder.sign(signer, hashes.SHA384())


@dataclass(frozen=True)
class CTLog:
    """A certificate transparency log reduced to its signing key (RFC 6962 section 3.2)."""

    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls) -> CTLog:
        """A CT log with a fresh P-256 key (as Sigstore's CTFE)."""
        return cls(new_key("p256"))

    @property
    def log_id(self) -> bytes:
        """SHA-256 of the log's SPKI, the ``LogID`` of every SCT it signs."""
        return key_id(self.key)

    def sct_extension_value(
        self, precert_tbs: bytes, issuer_key: ec.EllipticCurvePublicKey, timestamp: datetime
    ) -> bytes:
        """The DER value of the SCT-list extension holding one v1 precert SCT.

        RFC 6962 section 3.2: the signature covers ``digitally-signed struct {version,
        signature_type=certificate_timestamp, timestamp, entry_type=precert_entry,
        PreCert{issuer_key_hash, tbs_certificate}, extensions}``.
        """
        millis = int(timestamp.timestamp() * 1000)
        signed = (
            b"\x00\x00"  # v1, certificate_timestamp
            + struct.pack(">QH", millis, 1)  # timestamp, precert_entry
            + key_id(issuer_key)
            + len(precert_tbs).to_bytes(3, "big")
            + precert_tbs
            + b"\x00\x00"  # no CtExtensions
        )
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            b"\x00"  # v1
            + self.log_id
            + struct.pack(">QH", millis, 0)  # timestamp, empty extensions
            + b"\x04\x03"  # sha256, ecdsa (RFC 5246 section 7.4.1.4.1)
            + struct.pack(">H", len(signature))
            + signature
        )
        sct_list = struct.pack(">H", len(sct)) + sct
        return der_octet_string(struct.pack(">H", len(sct_list)) + sct_list)


@dataclass(frozen=True)
class GitHubClaims:
    """The GitHub Actions OIDC claims Fulcio copies into a certificate.

    Field order follows the Fulcio OIDs ``1.3.6.1.4.1.57264.1.9`` to ``.22`` (each a DER
    UTF8String); ``legacy_*`` are the deprecated raw-string ``.2`` to ``.6`` that Fulcio
    still writes and that ``sigstore.verify.policy.GitHubWorkflow*`` checks.
    """

    build_signer_uri: str  # .9, equals the SAN
    build_signer_digest: str  # .10
    runner_environment: str  # .11
    source_repository_uri: str  # .12
    source_repository_digest: str  # .13
    source_repository_ref: str  # .14
    source_repository_identifier: str  # .15
    source_repository_owner_uri: str  # .16
    source_repository_owner_identifier: str  # .17
    build_config_uri: str  # .18
    build_config_digest: str  # .19
    build_trigger: str  # .20
    run_invocation_uri: str  # .21
    source_repository_visibility: str  # .22
    legacy_workflow_trigger: str  # .2
    legacy_workflow_sha: str  # .3
    legacy_workflow_name: str  # .4
    legacy_workflow_repository: str  # .5
    legacy_workflow_ref: str  # .6

    @classmethod
    def for_workflow(
        cls,
        repository: str = "acme/app",
        workflow: str = ".github/workflows/release.yml",
        ref: str = "refs/tags/v1.0.0",
        *,
        sha: str = "a" * 40,
        trigger: str = "push",
        signer_workflow: str | None = None,
        signer_sha: str | None = None,
        run_id: int = 4242,
        repository_id: str = "100001",
        owner_id: str = "200002",
        visibility: str = "public",
        runner_environment: str = "github-hosted",
        workflow_name: str = "Release",
    ) -> GitHubClaims:
        """Consistent claims for a run of ``workflow`` in ``repository`` at ``ref``.

        ``signer_workflow`` (``owner/repo/path@ref``) models a reusable workflow such as
        slsa-github-generator's builder: it becomes the build signer URI (and the SAN)
        while the calling workflow stays the build config URI, as in Fulcio.
        """
        base = f"https://github.com/{repository}"
        config_uri = f"{base}/{workflow}@{ref}"
        signer_uri = f"https://github.com/{signer_workflow}" if signer_workflow else config_uri
        return cls(
            build_signer_uri=signer_uri,
            build_signer_digest=signer_sha or sha,
            runner_environment=runner_environment,
            source_repository_uri=base,
            source_repository_digest=sha,
            source_repository_ref=ref,
            source_repository_identifier=repository_id,
            source_repository_owner_uri=f"https://github.com/{repository.split('/')[0]}",
            source_repository_owner_identifier=owner_id,
            build_config_uri=config_uri,
            build_config_digest=sha,
            build_trigger=trigger,
            run_invocation_uri=f"{base}/actions/runs/{run_id}/attempts/1",
            source_repository_visibility=visibility,
            legacy_workflow_trigger=trigger,
            legacy_workflow_sha=sha,
            legacy_workflow_name=workflow_name,
            legacy_workflow_repository=repository,
            legacy_workflow_ref=ref,
        )

    @property
    def identity(self) -> str:
        """The SAN Fulcio writes for a GitHub workflow: the build signer URI."""
        return self.build_signer_uri

    def extensions(self) -> list[x509.UnrecognizedExtension]:
        """The extensions, DER UTF8String from ``.9`` on, raw strings for ``.2``-``.6``."""
        legacy = {"trigger": 2, "sha": 3, "name": 4, "repository": 5, "ref": 6}
        out: list[x509.UnrecognizedExtension] = []
        modern = [f for f in fields(self) if not f.name.startswith("legacy_")]
        for arc, field in enumerate(modern, start=9):
            oid = x509.ObjectIdentifier(f"{FULCIO_OID_PREFIX}.{arc}")
            out.append(x509.UnrecognizedExtension(oid, der_utf8string(getattr(self, field.name))))
        for suffix, arc in legacy.items():
            oid = x509.ObjectIdentifier(f"{FULCIO_OID_PREFIX}.{arc}")
            value = getattr(self, f"legacy_workflow_{suffix}")
            out.append(x509.UnrecognizedExtension(oid, value.encode()))
        return out


@dataclass(frozen=True)
class LeafRequest:
    """What a leaf certificate should say; the SCT and CA are chosen by the caller."""

    identity: str
    issuer: str
    not_before: datetime
    not_after: datetime
    public_key: ec.EllipticCurvePublicKey
    email: bool = False
    github: GitHubClaims | None = None

    @property
    def san(self) -> x509.GeneralName:
        """RFC 822 name for email identities, URI otherwise (Fulcio's SAN rules).

        An ``@`` alone does not make an email: workflow URIs carry ``@refs/...``.
        """
        if self.email or ("@" in self.identity and "://" not in self.identity):
            return x509.RFC822Name(self.identity)
        return x509.UniformResourceIdentifier(self.identity)


def _leaf_builder(
    request: LeafRequest,
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePublicKey,
    serial: int,
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(request.public_key)
        .serial_number(serial)
        .not_valid_before(request.not_before)
        .not_valid_after(request.not_after)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(request.public_key), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
        # Subject is empty, so the SAN must be critical (RFC 5280 section 4.2.1.6).
        .add_extension(x509.SubjectAlternativeName([request.san]), critical=True)
        .add_extension(x509.UnrecognizedExtension(ISSUER_V1_OID, request.issuer.encode()), False)
        .add_extension(
            x509.UnrecognizedExtension(ISSUER_V2_OID, der_utf8string(request.issuer)), False
        )
    )
    for extension in request.github.extensions() if request.github else []:
        builder = builder.add_extension(extension, critical=False)
    return builder


@dataclass(frozen=True)
class SctOptions:
    """How to produce the SCT; the defaults give a valid one."""

    log: CTLog
    #: Sign a different precertificate (another serial): a valid signature over other data.
    over_other_data: bool = False


def issue_leaf(request: LeafRequest, ca: CertificateAuthority, sct: SctOptions) -> x509.Certificate:
    """Issue a leaf with a real embedded SCT, in two passes over the same TBS.

    Pass one embeds a placeholder SCT only to learn ``tbs_precertificate_bytes`` (the TBS
    with the SCT extension removed, RFC 6962 section 3.1); pass two embeds the SCT over
    exactly those bytes. The serial is fixed so both passes share one TBS.
    """
    serial = x509.random_serial_number()
    issuer_key = ca.intermediate_key.public_key()

    def build(sct_value: bytes) -> x509.Certificate:
        builder = _leaf_builder(request, ca.intermediate, issuer_key, serial)
        builder = builder.add_extension(x509.UnrecognizedExtension(SCT_LIST_OID, sct_value), False)
        return builder.sign(ca.intermediate_key, hashes.SHA384())

    placeholder = sct.log.sct_extension_value(b"placeholder", issuer_key, request.not_before)
    precert_tbs = build(placeholder).tbs_precertificate_bytes
    if sct.over_other_data:
        other = _leaf_builder(request, ca.intermediate, issuer_key, serial + 1)
        other = other.add_extension(x509.UnrecognizedExtension(SCT_LIST_OID, placeholder), False)
        precert_tbs = other.sign(ca.intermediate_key, hashes.SHA384()).tbs_precertificate_bytes
    leaf = build(sct.log.sct_extension_value(precert_tbs, issuer_key, request.not_before))
    if not sct.over_other_data and leaf.tbs_precertificate_bytes != precert_tbs:
        raise RuntimeError("precertificate TBS changed between passes")
    return leaf
