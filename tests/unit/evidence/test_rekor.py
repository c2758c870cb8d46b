"""gate.evidence.rekor: the legacy SET over canonical JSON, and the entry body binding."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gate.errors import VerificationError
from gate.evidence import fulcio, rekor
from gate.sources.trustroot import load_trust_root
from testkit.cosign import simple_signing_payload
from testkit.sigstore_authority import FORGERIES, Authority, GitHubClaims

ISSUER = "https://token.actions.githubusercontent.com"
CLAIMS = GitHubClaims.for_workflow()
PAYLOAD = simple_signing_payload("r.example/app", "sha256:" + "ab" * 32)
NOW = dt.datetime.now(dt.UTC)


def _sign(authority: Authority, payload: bytes = PAYLOAD, **kw: Any) -> Any:
    return authority.sign_legacy(payload, identity=CLAIMS.identity, issuer=ISSUER, **kw)


def _verify(authority: Authority, annotation: str, sig: Any, payload: bytes = PAYLOAD) -> Any:
    cert = fulcio.load_certificate(sig.certificate_pem)
    return rekor.verify_legacy_entry(
        annotation,
        load_trust_root(authority.trusted_root_path),
        payload=payload,
        signature=sig.signature,
        signer=cert,
        now=NOW,
    )


def test_genuine_entry(sigstore_authority: Authority) -> None:
    sig = _sign(sigstore_authority)
    entry = _verify(sigstore_authority, sig.annotations()["dev.sigstore.cosign/bundle"], sig)
    assert entry.log_id == sigstore_authority.rekor_log_id
    assert abs((entry.integrated_at - NOW).total_seconds()) < 120


def test_canonical_json_is_what_the_set_signs(sigstore_authority: Authority) -> None:
    sig = _sign(sigstore_authority)
    entry = rekor.parse_cosign_bundle(sig.annotations()["dev.sigstore.cosign/bundle"])
    assert entry.canonical().startswith(b'{"body":"')
    assert list(json.loads(entry.canonical())) == ["body", "integratedTime", "logID", "logIndex"]


def _mutate(annotation: str, how: str) -> str:
    doc = json.loads(annotation)
    p = doc["Payload"]
    if how == "time":
        p["integratedTime"] += 1
    elif how == "index":
        p["logIndex"] += 1
    elif how == "set":
        s = bytearray(base64.b64decode(doc["SignedEntryTimestamp"]))
        s[10] ^= 0xFF
        doc["SignedEntryTimestamp"] = base64.b64encode(bytes(s)).decode()
    elif how == "unknown-log":
        p["logID"] = "00" * 32
    elif how == "negative":
        p["logIndex"] = -1
    elif how == "string-time":
        p["integratedTime"] = str(p["integratedTime"])
    elif how == "garbage":
        return "{"
    return json.dumps(doc)


@pytest.mark.parametrize(
    "how", ["time", "index", "set", "unknown-log", "negative", "string-time", "garbage"]
)
def test_tampered_set_is_tlog_invalid(sigstore_authority: Authority, how: str) -> None:
    sig = _sign(sigstore_authority)
    forged = _mutate(sig.annotations()["dev.sigstore.cosign/bundle"], how)
    with pytest.raises(VerificationError) as e:
        _verify(sigstore_authority, forged, sig)
    assert e.value.reason == "tlog-invalid"


def test_set_from_another_log(sigstore_authority: Authority) -> None:
    sig = _sign(sigstore_authority, forgery=FORGERIES["set-signed-by-other-key"])
    with pytest.raises(VerificationError) as e:
        _verify(sigstore_authority, sig.annotations()["dev.sigstore.cosign/bundle"], sig)
    assert e.value.reason == "tlog-invalid"


def test_entry_in_the_future(sigstore_authority: Authority) -> None:
    sig = _sign(sigstore_authority, at=NOW + dt.timedelta(hours=2))
    with pytest.raises(VerificationError, match="future"):
        _verify(sigstore_authority, sig.annotations()["dev.sigstore.cosign/bundle"], sig)


def test_entry_for_another_payload_or_signature(sigstore_authority: Authority) -> None:
    """A genuine SET of one entry must not vouch for another signature (CVE-2022-36056)."""
    one = _sign(sigstore_authority)
    two = _sign(sigstore_authority, simple_signing_payload("r.example/app", "sha256:" + "cd" * 32))
    annotation = one.annotations()["dev.sigstore.cosign/bundle"]
    with pytest.raises(VerificationError, match="another payload"):
        _verify(sigstore_authority, annotation, two, two.payload)
    with pytest.raises(VerificationError, match="another signature"):
        _verify(sigstore_authority, annotation, two, PAYLOAD)


def test_entry_for_another_certificate(sigstore_authority: Authority) -> None:
    sig = _sign(sigstore_authority)
    root = load_trust_root(sigstore_authority.trusted_root_path)
    other = _sign(sigstore_authority)
    with pytest.raises(VerificationError, match="another certificate"):
        rekor.verify_legacy_entry(
            sig.annotations()["dev.sigstore.cosign/bundle"],
            root,
            payload=PAYLOAD,
            signature=sig.signature,
            signer=fulcio.load_certificate(other.certificate_pem),
            now=NOW,
        )


def test_log_signature_kinds() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    from gate.sources.trustroot import LogKey, Validity

    log = LogKey("x", b"id", key.public_key(), Validity(None, None))
    data = rfc8785.dumps({"a": 1})
    assert rekor.verify_log_signature(log, key.sign(data, ec.ECDSA(hashes.SHA256())), data)
    assert not rekor.verify_log_signature(log, key.sign(b"x", ec.ECDSA(hashes.SHA256())), data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("integratedTime", 10**12), ("integratedTime", 2**63), ("logIndex", 2**63)],
)
def test_out_of_range_numbers_are_tlog_invalid(field: str, value: int) -> None:
    """A hostile integratedTime must be a deny, not a crash in the date arithmetic."""
    import json as _json

    from gate.evidence.rekor import TlogError, parse_cosign_bundle

    doc = {
        "SignedEntryTimestamp": "AA==",
        "Payload": {"body": "AA==", "integratedTime": 1, "logIndex": 1, "logID": "00"},
    }
    doc["Payload"][field] = value
    with pytest.raises(TlogError) as e:
        parse_cosign_bundle(_json.dumps(doc))
    assert e.value.reason == "tlog-invalid"
