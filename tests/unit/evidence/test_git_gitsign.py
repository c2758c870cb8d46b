"""Keyless (gitsign) signatures minted by the private authority: each forgery, its reason."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gate.errors import GateError, SignatureError
from gate.evidence.gitsign import KeylessVerified, parse_cms, parse_tlog_entry, verify_keyless
from gate.evidence.rekor import TlogError
from gate.policy.model import KeylessIdentity
from gate.sources.trustroot import TrustRoot, load_trust_root
from testkit.gitsign import (
    GITSIGN_FORGERIES,
    GitsignForgery,
    KeylessGitSigner,
    armor,
    tlog_entry_protobuf,
)
from testkit.plugin_sigstore import GITHUB_ISSUER
from testkit.sigstore_authority import Authority

WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
PAYLOAD = b"object abc\ntype commit\ntag v1.0.0\n\nRelease\n"
IDENTITIES = {
    "gha": KeylessIdentity.model_validate(
        {"issuer": GITHUB_ISSUER, "subject": "https://github.com/acme/app/**"}
    )
}

EXPECTED_REASON = {
    "online-mode": "tlog-entry-missing",
    "set-signed-by-other-key": "tlog-invalid",
    "entry-for-other-signature": "tlog-invalid",
    "digest-over-other-payload": "bad-signature",
    "corrupt-signature": "bad-signature",
    "untrusted-ca": "untrusted-signer",
    "other-identity": "untrusted-signer",
    "other-issuer": "untrusted-signer",
    "expired-certificate": "key-expired",
    "integrated-outside-validity": "key-expired",
    "sct-untrusted-log": "sct-invalid",
    "sct-over-other-data": "sct-invalid",
}


@pytest.fixture(scope="module")
def trust(sigstore_authority: Authority) -> TrustRoot:
    return load_trust_root(sigstore_authority.trusted_root_path)


def _verify(
    armored: bytes, trust: TrustRoot, payload: bytes = PAYLOAD, now: dt.datetime | None = None
) -> KeylessVerified:
    return verify_keyless(payload, armored, trust, IDENTITIES, now or dt.datetime.now(dt.UTC))


def _sign(authority: Authority, forgery: GitsignForgery | None = None) -> bytes:
    signer = KeylessGitSigner(
        authority, WORKFLOW, GITHUB_ISSUER, forgery=forgery or GitsignForgery()
    )
    return signer.sign(PAYLOAD)


def test_genuine(sigstore_authority: Authority, trust: TrustRoot) -> None:
    got = _verify(_sign(sigstore_authority), trust)
    assert got.key_names == {"gha"} and got.subject == WORKFLOW and got.issuer == GITHUB_ISSUER


def test_reason_table_covers_every_forgery() -> None:
    assert set(EXPECTED_REASON) == set(GITSIGN_FORGERIES)


@pytest.mark.parametrize("name", sorted(GITSIGN_FORGERIES))
def test_forgery(sigstore_authority: Authority, trust: TrustRoot, name: str) -> None:
    armored = _sign(sigstore_authority, GITSIGN_FORGERIES[name])
    with pytest.raises(GateError) as e:
        _verify(armored, trust)
    assert e.value.reason == EXPECTED_REASON[name]


def test_untrusted_identity_names_found_and_expected(
    sigstore_authority: Authority, trust: TrustRoot
) -> None:
    armored = _sign(sigstore_authority, GITSIGN_FORGERIES["other-identity"])
    with pytest.raises(GateError) as e:
        _verify(armored, trust)
    assert "evil" in (e.value.found or "") and "acme/app" in (e.value.expected or "")


def test_signature_for_another_payload(sigstore_authority: Authority, trust: TrustRoot) -> None:
    with pytest.raises(SignatureError):
        _verify(_sign(sigstore_authority), trust, PAYLOAD + b"x")


def test_other_trust_root(
    sigstore_authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = Authority.create(tmp_path_factory.mktemp("other-sigstore"))
    with pytest.raises(GateError) as e:
        _verify(_sign(sigstore_authority), load_trust_root(other.trusted_root_path))
    assert e.value.reason == "untrusted-signer"


@pytest.mark.parametrize(
    "armored",
    [
        b"not armor",
        armor(b"\x30\x03\x02\x01\x01"),  # DER, but not a ContentInfo
        armor(b"\xff" * 40),
    ],
)
def test_garbage_cms_is_a_bad_signature(armored: bytes) -> None:
    with pytest.raises(SignatureError):
        parse_cms(armored)


def test_cms_layout(sigstore_authority: Authority) -> None:
    cms = parse_cms(_sign(sigstore_authority))
    assert cms.signed_attrs_der[0] == 0x31  # signed as SET OF, not [0]
    assert cms.tlog_entry is not None
    entry = parse_tlog_entry(cms.tlog_entry)
    assert (entry.kind, entry.version) == ("hashedrekord", "0.0.1")
    assert entry.canonicalized_body == b""  # gitsign clears it; we rebuild it


@pytest.mark.parametrize("data", [b"\x08", b"\x0a\x05ab", b"\x0b", b"\x12\x02\x0a"])
def test_garbage_protobuf(data: bytes) -> None:
    with pytest.raises(TlogError):
        parse_tlog_entry(data)


# -- the shared trust root, certificate and SET checks, as gitsign meets them ---------


@pytest.mark.parametrize("name", ["sct-untrusted-log", "sct-over-other-data"])
def test_certificate_with_a_wrong_sct(
    sigstore_authority: Authority, trust: TrustRoot, name: str
) -> None:
    # Chain, validity, SET and identity all hold: only the SCT betrays the certificate
    # (one Fulcio never submitted to the trusted CT log, so a mis-issuance stays hidden).
    armored = _sign(sigstore_authority, GITSIGN_FORGERIES[name])
    with pytest.raises(GateError) as e:
        _verify(armored, trust)
    assert e.value.reason == "sct-invalid"
    assert "CT log" in e.value.diagnostics()


def _edited_root(
    authority: Authority, tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> TrustRoot:
    doc = json.loads(authority.trusted_root_path.read_text())
    edit(doc)
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps(doc))
    return load_trust_root(path)


def _future(doc: dict[str, Any], *where: str) -> None:
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for item in doc[where[0]]:
        target = item["publicKey"] if len(where) > 1 else item
        target["validFor"] = {"start": later}


def test_trust_root_without_ct_logs_is_an_sct_failure(
    sigstore_authority: Authority, tmp_path: Path
) -> None:
    root = _edited_root(sigstore_authority, tmp_path, lambda d: d.update(ctlogs=[]))
    with pytest.raises(GateError) as e:
        _verify(_sign(sigstore_authority), root)
    assert e.value.reason == "sct-invalid"


def test_rekor_key_outside_its_validity_window(
    sigstore_authority: Authority, tmp_path: Path
) -> None:
    root = _edited_root(sigstore_authority, tmp_path, lambda d: _future(d, "tlogs", "publicKey"))
    with pytest.raises(GateError) as e:
        _verify(_sign(sigstore_authority), root)
    assert e.value.reason == "tlog-invalid"


def test_certificate_authority_outside_its_validity_window(
    sigstore_authority: Authority, tmp_path: Path
) -> None:
    root = _edited_root(
        sigstore_authority, tmp_path, lambda d: _future(d, "certificateAuthorities")
    )
    with pytest.raises(GateError) as e:
        _verify(_sign(sigstore_authority), root)
    assert e.value.reason == "untrusted-signer"


def test_entry_integrated_in_the_future(sigstore_authority: Authority, trust: TrustRoot) -> None:
    # The gate's clock an hour before the log's time: the entry cannot be trusted yet.
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with pytest.raises(GateError) as e:
        _verify(_sign(sigstore_authority), trust, now=earlier)
    assert e.value.reason == "tlog-invalid"


def test_out_of_range_integrated_time_is_a_tlog_failure(sigstore_authority: Authority) -> None:
    signer = KeylessGitSigner(sigstore_authority, WORKFLOW, GITHUB_ISSUER)
    signer.sign(PAYLOAD)
    assert signer.last_entry is not None
    huge = tlog_entry_protobuf(signer.last_entry).replace(
        b"\x20" + _varint(signer.last_entry.integrated_time), b"\x20" + _varint(2**64 - 1)
    )
    with pytest.raises(TlogError, match="integratedTime"):
        parse_tlog_entry(huge)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)
