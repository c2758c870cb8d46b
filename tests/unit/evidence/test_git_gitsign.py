"""Keyless (gitsign) signatures minted by the private authority: each forgery, its reason."""

from __future__ import annotations

import base64

import pytest

from gate.errors import GateError, SignatureError
from gate.evidence.gitsign import (
    KeylessTrust,
    TlogInvalidError,
    parse_cms,
    parse_tlog_entry,
    verify_keyless,
)
from gate.policy.model import KeylessIdentity
from testkit.gitsign import GITSIGN_FORGERIES, GitsignForgery, KeylessGitSigner, armor
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
}


@pytest.fixture(scope="module")
def trust(sigstore_authority: Authority) -> KeylessTrust:
    return KeylessTrust.from_trusted_root(sigstore_authority.trusted_root_path.read_bytes())


def _sign(authority: Authority, forgery: GitsignForgery | None = None) -> bytes:
    signer = KeylessGitSigner(
        authority, WORKFLOW, GITHUB_ISSUER, forgery=forgery or GitsignForgery()
    )
    return signer.sign(PAYLOAD)


def test_genuine(sigstore_authority: Authority, trust: KeylessTrust) -> None:
    got = verify_keyless(PAYLOAD, _sign(sigstore_authority), trust, IDENTITIES)
    assert got.key_names == {"gha"} and got.subject == WORKFLOW and got.issuer == GITHUB_ISSUER


def test_reason_table_covers_every_forgery() -> None:
    assert set(EXPECTED_REASON) == set(GITSIGN_FORGERIES)


@pytest.mark.parametrize("name", sorted(GITSIGN_FORGERIES))
def test_forgery(sigstore_authority: Authority, trust: KeylessTrust, name: str) -> None:
    armored = _sign(sigstore_authority, GITSIGN_FORGERIES[name])
    with pytest.raises(GateError) as e:
        verify_keyless(PAYLOAD, armored, trust, IDENTITIES)
    assert e.value.reason == EXPECTED_REASON[name]


def test_untrusted_identity_names_found_and_expected(
    sigstore_authority: Authority, trust: KeylessTrust
) -> None:
    armored = _sign(sigstore_authority, GITSIGN_FORGERIES["other-identity"])
    with pytest.raises(GateError) as e:
        verify_keyless(PAYLOAD, armored, trust, IDENTITIES)
    assert "evil" in (e.value.found or "") and "acme/app" in (e.value.expected or "")


def test_signature_for_another_payload(sigstore_authority: Authority, trust: KeylessTrust) -> None:
    with pytest.raises(SignatureError):
        verify_keyless(PAYLOAD + b"x", _sign(sigstore_authority), trust, IDENTITIES)


def test_other_trust_root(
    sigstore_authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = Authority.create(tmp_path_factory.mktemp("other-sigstore"))
    trust = KeylessTrust.from_trusted_root(other.trusted_root_path.read_bytes())
    with pytest.raises(GateError) as e:
        verify_keyless(PAYLOAD, _sign(sigstore_authority), trust, IDENTITIES)
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
    with pytest.raises(TlogInvalidError):
        parse_tlog_entry(data)


def test_garbage_trust_root() -> None:
    with pytest.raises(SignatureError):
        KeylessTrust.from_trusted_root(b'{"tlogs": [{"publicKey": {"rawBytes": "!"}}]}')
    assert KeylessTrust.from_trusted_root(base64.b64decode(b"e30=")).ca_chains == ()
