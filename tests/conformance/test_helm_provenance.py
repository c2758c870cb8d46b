"""Helm's own provenance test data (helm v4.1.x ``pkg/provenance/testdata``, test charts).

Read from ``$GATE_VECTORS/helm-provenance`` (never copied); every case skips
visibly when the vectors are absent. Expected, as in helm's suite: both
signed charts verify with ``helm-test-key.pub``; the tampered message block
fails on the signature (not on the hash); a one-byte change to an archive
fails on the hash; a chart checked under another file name fails. We also
require what ``helm verify`` does not: the signed name/version must be the
chart's.
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from gate.errors import GateError
from gate.evidence.helm_prov import parse_provenance, verify_provenance
from tests.conformance._vectors import VECTORS, absent

HELM = VECTORS / "helm-provenance"
HELM_TEST_KEY_FPR = "5E615389B53CA37F0EE60BD3843BBF981FC18762"
CHARTS = [("hashtest", "1.2.3"), ("signtest", "0.1.0")]
HAVE = HELM.is_dir()


def cases(values: list[tuple[str, str]]) -> list[object]:
    return list(values) if HAVE else absent(HELM, 2)


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armored(binary_keyring: Path) -> str:
    """A binary keyring (what ``helm verify --keyring`` reads) as the policy's armored form."""
    data = binary_keyring.read_bytes()
    body = "\n".join(textwrap.wrap(base64.b64encode(data).decode(), 64))
    crc = base64.b64encode(_crc24(data).to_bytes(3, "big")).decode()
    return (
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
        f"{body}\n={crc}\n-----END PGP PUBLIC KEY BLOCK-----\n"
    )


def helm_key() -> dict[str, str]:
    return {"helm-test": armored(HELM / "helm-test-key.pub")}


def reason_of(prov: bytes, archive: bytes, name: str, version: str) -> str:
    with pytest.raises(GateError) as e:
        verify_provenance(prov, archive, name=name, version=version, keys=helm_key())
    return e.value.reason


@pytest.mark.parametrize(("name", "version"), cases(CHARTS))
@pytest.mark.parametrize("keyring", ["helm-test-key.pub", "helm-mixed-keyring.pub"])
def test_signed_charts_verify(name: str, version: str, keyring: str) -> None:
    prov = (HELM / f"{name}-{version}.tgz.prov").read_bytes()
    archive = (HELM / f"{name}-{version}.tgz").read_bytes()
    got = verify_provenance(
        prov, archive, name=name, version=version, keys={"k": armored(HELM / keyring)}
    )
    assert got.signer_fingerprint == HELM_TEST_KEY_FPR
    assert (got.name, got.version, got.file_name) == (name, version, f"{name}-{version}.tgz")


@pytest.mark.parametrize(("name", "version"), cases([("hashtest", "1.2.3")]))
def test_message_block_verifies(name: str, version: str) -> None:
    # msgblock.yaml.asc signs the same message as hashtest's .prov, with its own signature.
    prov = (HELM / "msgblock.yaml.asc").read_bytes()
    assert parse_provenance(prov).signed_text.replace(b"\r\n", b"\n") == (
        (HELM / "msgblock.yaml").read_bytes().rstrip(b"\n")
    )
    archive = (HELM / f"{name}-{version}.tgz").read_bytes()
    verify_provenance(prov, archive, name=name, version=version, keys=helm_key())


@pytest.mark.parametrize(("name", "version"), cases([("hashtest", "1.2.3")]))
def test_tampered_message_block_fails_on_the_signature(name: str, version: str) -> None:
    prov = (HELM / "msgblock.yaml.tampered").read_bytes()
    archive = (HELM / f"{name}-{version}.tgz").read_bytes()
    assert reason_of(prov, archive, name, version) == "bad-signature"


@pytest.mark.parametrize(("name", "version"), cases(CHARTS))
def test_one_changed_byte_fails_on_the_hash(name: str, version: str) -> None:
    prov = (HELM / f"{name}-{version}.tgz.prov").read_bytes()
    archive = bytearray((HELM / f"{name}-{version}.tgz").read_bytes())
    archive[len(archive) // 2] ^= 0x01
    assert reason_of(prov, bytes(archive), name, version) == "digest-mismatch"


@pytest.mark.parametrize(("name", "version"), cases(CHARTS))
def test_chart_checked_under_another_file_name(name: str, version: str) -> None:
    prov = (HELM / f"{name}-{version}.tgz.prov").read_bytes()
    archive = (HELM / f"{name}-{version}.tgz").read_bytes()
    assert reason_of(prov, archive, name, version + "-renamed") == "chart-mismatch"
    other = "signtest" if name == "hashtest" else "hashtest"
    assert reason_of(prov, archive, other, version) == "chart-mismatch"


@pytest.mark.parametrize(("name", "version"), cases(CHARTS))
def test_provenance_of_one_chart_for_the_other(name: str, version: str) -> None:
    other, other_version = next(c for c in CHARTS if c[0] != name)
    prov = (HELM / f"{other}-{other_version}.tgz.prov").read_bytes()
    archive = (HELM / f"{name}-{version}.tgz").read_bytes()
    assert reason_of(prov, archive, name, version) == "chart-mismatch"
