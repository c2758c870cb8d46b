"""An RFC 3161 timestamp authority for the private Sigstore trust root.

A Sigstore bundle may carry signed timestamps over its signature
(``verificationMaterial.timestampVerificationData.rfc3161Timestamps``); verifiers then
check the certificate chain at the timestamp's ``genTime`` (as well as at the log's
integrated time). The token is a CMS ``SignedData`` (RFC 5652) wrapping a ``TSTInfo``
(RFC 3161 section 2.4.2), signed over signed attributes that include the ESS
``signingCertificateV2`` (RFC 5816). The TSA leaf must carry a critical
``id-kp-timeStamping`` EKU (RFC 3161 section 2.3).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asn1crypto import cms, tsp  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testkit.sigstore_certs import new_key
from testkit.sigstore_log import b64

#: Policy OID under Sigstore's arc, as sigstore/timestamp-authority uses.
TSA_POLICY_OID = "1.3.6.1.4.1.57264.2"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass
class TimestampAuthority:
    """A TSA: a root and a timestamping leaf (P-384), and a serial counter."""

    root: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    serial: int = 1

    @classmethod
    def create(cls, *, not_before: datetime) -> TimestampAuthority:
        """Mint the TSA root and its leaf, valid for ten years from ``not_before``."""
        root_key, leaf_key = new_key("p384"), new_key("p384")
        not_after = not_before + timedelta(days=3650)
        root = (
            x509.CertificateBuilder()
            .subject_name(_name("tsa-root"))
            .issuer_name(_name("tsa-root"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA384())
        )
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_name("tsa-leaf"))
            .issuer_name(root.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                critical=False,
            )
            .sign(root_key, hashes.SHA384())
        )
        return cls(root=root, leaf_key=leaf_key, leaf=leaf)

    def trusted_root_entry(self, valid_for: dict[str, str]) -> dict[str, Any]:
        """The ``timestampAuthorities[]`` item: chain leaf first, root last."""
        return {
            "subject": {"organization": "sigstore.test", "commonName": "tsa-root"},
            "uri": "https://tsa.sigstore.test",
            "certChain": {
                "certificates": [{"rawBytes": b64(_der(c))} for c in (self.leaf, self.root)]
            },
            "validFor": valid_for,
        }

    def timestamp(self, message: bytes, *, at: datetime) -> bytes:
        """A DER ``TimeStampResp`` (status granted) over ``SHA-256(message)`` at ``at``."""
        tst_info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": TSA_POLICY_OID,
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": hashlib.sha256(message).digest(),
                },
                "serial_number": self.serial,
                "gen_time": at,
            }
        )
        self.serial += 1
        content = tst_info.dump()
        leaf_der = _der(self.leaf)
        leaf_asn1 = asn1_x509.Certificate.load(leaf_der)
        signed_attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "signing_time", "values": [cms.Time({"utc_time": at})]},
                {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [{"cert_hash": hashlib.sha256(leaf_der).digest()}]}],
                },
            ]
        )
        signature = self.leaf_key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": leaf_asn1.issuer,
                            "serial_number": leaf_asn1.serial_number,
                        }
                    }
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": "sha256_ecdsa"},
                "signature": signature,
            }
        )
        signed_data = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [{"algorithm": "sha256"}],
                "encap_content_info": {"content_type": "tst_info", "content": tst_info},
                "certificates": [leaf_asn1],
                "signer_infos": [signer_info],
            }
        )
        response = tsp.TimeStampResp(
            {
                "status": {"status": "granted"},
                "time_stamp_token": {"content_type": "signed_data", "content": signed_data},
            }
        )
        return bytes(response.dump())
