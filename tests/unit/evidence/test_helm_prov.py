"""Helm provenance: parsing, signature (real gpg keys from testkit), hash and name binding.

Charts are packaged and signed by the real helm 4.1.4, whose ``.prov`` has no
CRC24 armor line and no final newline; hand-made provenance (other hashes,
dash-escaping, mislabelled metadata) is clearsigned by the real gpg.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from gate.errors import GateError
from gate.evidence.helm_prov import (
    MalformedChartError,
    chart_file_name,
    parse_provenance,
    read_chart_archive,
    verify_provenance,
)
from testkit.helmcharts import PackagedChart, add_armor_checksum, parse_prov, tamper
from testkit.pgp import PgpKey, PgpKeyFactory


def keys_of(*keys: PgpKey) -> dict[str, str]:
    return {f"k{i}": k.public_armored().decode() for i, k in enumerate(keys)}


def reason(exc: pytest.ExceptionInfo[GateError]) -> str:
    return exc.value.reason


def make_tgz(files: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def chart_tgz(name: str = "demo", version: str = "0.1.0", top: str | None = None) -> bytes:
    chart_yaml = f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode()
    return make_tgz({f"{top or name}/Chart.yaml": chart_yaml, f"{top or name}/values.yaml": b"{}"})


def body(name: str, version: str, files: dict[str, bytes]) -> bytes:
    sums = "".join(
        f"  {fn}: sha256:{hashlib.sha256(data).hexdigest()}\n" for fn, data in files.items()
    )
    return f"apiVersion: v2\nname: {name}\nversion: {version}\n\n...\nfiles:\n{sums}".encode()


def clearsigned(key: PgpKey, name: str, version: str, archive: bytes, **kw: str) -> bytes:
    return key.clearsign(body(name, version, {chart_file_name(name, version): archive}), **kw)


@pytest.fixture(scope="module")
def other_key(pgp_keys: PgpKeyFactory) -> PgpKey:
    return pgp_keys("Other Prov Signer")


# --- genuine -------------------------------------------------------------------------------------


def test_helm4_provenance_without_armor_checksum_verifies(
    signed_chart: PackagedChart, pgp_key: PgpKey
) -> None:
    assert signed_chart.prov is not None
    prov = signed_chart.prov.read_bytes()
    assert b"\n=" not in prov.split(b"BEGIN PGP SIGNATURE")[1]  # the helm 4 trap is present
    archive = signed_chart.tgz.read_bytes()
    got = verify_provenance(prov, archive, name="demo", version="0.1.0", keys=keys_of(pgp_key))
    assert got.digest == "sha256:" + signed_chart.sha256
    assert got.signer_fingerprint == pgp_key.fingerprint
    assert got.key_names == {"k0"}
    assert (got.file_name, got.hash_name) == ("demo-0.1.0.tgz", "SHA512")


def test_provenance_with_armor_checksum_verifies(
    signed_chart: PackagedChart, pgp_key: PgpKey
) -> None:
    assert signed_chart.prov is not None
    prov = add_armor_checksum(signed_chart.prov.read_bytes())
    archive = signed_chart.tgz.read_bytes()
    verify_provenance(prov, archive, name="demo", version="0.1.0", keys=keys_of(pgp_key))


def test_signed_text_is_what_is_parsed(signed_chart: PackagedChart) -> None:
    assert signed_chart.prov is not None
    prov = signed_chart.prov.read_bytes()
    parsed = parse_provenance(prov)
    meta, files = parse_prov(prov)
    assert parsed.files == files
    assert parsed.signed_text.replace(b"\r\n", b"\n").startswith(meta)
    assert (parsed.name, parsed.version) == ("demo", "0.1.0")


@pytest.mark.parametrize("digest", ["SHA256", "SHA384", "SHA512"])
def test_gpg_clearsigned_with_other_sha2_hashes(pgp_key: PgpKey, digest: str) -> None:
    archive = chart_tgz()
    prov = clearsigned(pgp_key, "demo", "0.1.0", archive, digest=digest)
    got = verify_provenance(prov, archive, name="demo", version="0.1.0", keys=keys_of(pgp_key))
    assert got.hash_name == digest


def test_dash_escaped_lines_and_crlf_line_ends(pgp_key: PgpKey) -> None:
    archive = chart_tgz()
    text = body("demo", "0.1.0", {"demo-0.1.0.tgz": archive}).replace(
        b"apiVersion: v2\n", b"apiVersion: v2\nkeywords:\n- one\n- two\n"
    )
    prov = pgp_key.clearsign(text)
    assert b"\n- - one\n" in prov  # gpg dash-escaped the lines starting with "-"
    parsed = parse_provenance(prov.replace(b"\n", b"\r\n"))
    assert parsed.metadata["keywords"] == ["one", "two"]
    prov = prov.replace(b"\n", b"\r\n")
    verify_provenance(prov, archive, name="demo", version="0.1.0", keys=keys_of(pgp_key))


# --- signature and signer ------------------------------------------------------------------------


def test_other_key_is_untrusted(signed_chart: PackagedChart, other_key: PgpKey) -> None:
    assert signed_chart.prov is not None
    with pytest.raises(GateError) as e:
        verify_provenance(
            signed_chart.prov.read_bytes(),
            signed_chart.tgz.read_bytes(),
            name="demo",
            version="0.1.0",
            keys=keys_of(other_key),
        )
    assert reason(e) == "untrusted-signer"
    assert "provenance.signers" in (e.value.hint or "")


def test_changed_signed_text_is_a_bad_signature(pgp_key: PgpKey) -> None:
    archive = chart_tgz()
    prov = clearsigned(pgp_key, "demo", "0.1.0", archive).replace(
        b"apiVersion: v2", b"apiVersion: v1"
    )
    with pytest.raises(GateError) as e:
        verify_provenance(prov, archive, name="demo", version="0.1.0", keys=keys_of(pgp_key))
    assert reason(e) == "bad-signature"


@pytest.mark.parametrize(
    ("flag", "expected"), [("expired", "key-expired"), ("revoked", "key-revoked")]
)
def test_expired_and_revoked_keys_deny(pgp_keys: PgpKeyFactory, flag: str, expected: str) -> None:
    key = pgp_keys(f"Prov {flag}", **{flag: True})  # type: ignore[arg-type]
    archive = chart_tgz()
    prov = clearsigned(key, "demo", "0.1.0", archive)
    with pytest.raises(GateError) as e:
        verify_provenance(prov, archive, name="demo", version="0.1.0", keys=keys_of(key))
    assert reason(e) == expected


def test_one_signature_cannot_meet_a_threshold_of_two(pgp_key: PgpKey, other_key: PgpKey) -> None:
    archive = chart_tgz()
    prov = clearsigned(pgp_key, "demo", "0.1.0", archive)
    with pytest.raises(GateError) as e:
        verify_provenance(
            prov,
            archive,
            name="demo",
            version="0.1.0",
            keys=keys_of(pgp_key, other_key),
            threshold=2,
        )
    assert reason(e) == "threshold-not-met"


# --- hash and names ------------------------------------------------------------------------------


def test_one_changed_byte_fails_on_the_hash(
    signed_chart: PackagedChart, pgp_key: PgpKey, tmp_path: Path
) -> None:
    assert signed_chart.prov is not None
    archive = tamper(signed_chart.tgz, dest=tmp_path / "t.tgz").read_bytes()
    with pytest.raises(GateError) as e:
        verify_provenance(
            signed_chart.prov.read_bytes(),
            archive,
            name="demo",
            version="0.1.0",
            keys=keys_of(pgp_key),
        )
    assert reason(e) == "digest-mismatch"


def test_checked_under_another_file_name(signed_chart: PackagedChart, pgp_key: PgpKey) -> None:
    assert signed_chart.prov is not None
    with pytest.raises(GateError) as e:
        verify_provenance(
            signed_chart.prov.read_bytes(),
            signed_chart.tgz.read_bytes(),
            name="demo",
            version="0.1.1",
            keys=keys_of(pgp_key),
        )
    assert reason(e) == "chart-mismatch"


def test_signed_metadata_naming_another_chart(pgp_key: PgpKey) -> None:
    # The signer put demo-0.1.0.tgz's hash under metadata for "other": helm verify passes it.
    archive = chart_tgz()
    prov = pgp_key.clearsign(body("other", "0.1.0", {"demo-0.1.0.tgz": archive}))
    with pytest.raises(GateError) as e:
        verify_provenance(prov, archive, name="demo", version="0.1.0", keys=keys_of(pgp_key))
    assert reason(e) == "chart-mismatch"
    assert "signed chart metadata" in e.value.message


def test_archive_whose_chart_yaml_names_another_chart(pgp_key: PgpKey) -> None:
    archive = chart_tgz("other", "0.1.0")
    prov = clearsigned(pgp_key, "demo", "0.1.0", archive)
    with pytest.raises(GateError) as e:
        verify_provenance(prov, archive, name="demo", version="0.1.0", keys=keys_of(pgp_key))
    assert reason(e) == "chart-mismatch"
    assert "Chart.yaml" in e.value.message


# --- malformed provenance ------------------------------------------------------------------------


def _genuine(pgp_key: PgpKey) -> bytes:
    return clearsigned(pgp_key, "demo", "0.1.0", chart_tgz())


MALFORMED = {
    "empty": lambda p: b"",
    "not-utf8": lambda p: p.replace(b"name: demo", b"name: \xff"),
    "text-before": lambda p: b"hello\n" + p,
    "text-after": lambda p: p + b"\nmore\n",
    "no-hash-header": lambda p: p.replace(b"Hash: SHA512\n", b""),
    "sha1-header": lambda p: p.replace(b"Hash: SHA512", b"Hash: SHA1"),
    "hash-header-disagrees": lambda p: p.replace(b"Hash: SHA512", b"Hash: SHA256"),
    "other-armor-header": lambda p: p.replace(b"Hash: SHA512\n", b"Hash: SHA512\nCharset: x\n"),
    "bad-crc": lambda p: _with_crc(p, b"=AAAA"),
    "no-end": lambda p: p.split(b"-----END")[0],
    "no-signature": lambda p: p.split(b"-----BEGIN PGP SIGNATURE")[0],
    "bare-cr": lambda p: p.replace(b"name: demo", b"name: d\remo"),
    "undashed-dash-line": lambda p: p.replace(b"...\n", b"...\n-x: 1\n"),
    "two-signatures": lambda p: _double_signature(p),
    "no-files": lambda p: p.replace(b"files:", b"filez:"),
}


def _armor_parts(prov: bytes) -> tuple[bytes, bytes]:
    head, _, rest = prov.partition(b"-----BEGIN PGP SIGNATURE-----\n")
    armor = rest.split(b"-----END PGP SIGNATURE-----")[0]
    lines = armor.split(b"\n")
    blank = lines.index(b"")
    packets = base64.b64decode(b"".join(x for x in lines[blank + 1 :] if x and x[:1] != b"="))
    return head, packets


def _with_crc(prov: bytes, crc: bytes) -> bytes:
    head, packets = _armor_parts(prov)
    b64 = base64.b64encode(packets)
    return (
        head
        + b"-----BEGIN PGP SIGNATURE-----\n\n"
        + b64
        + b"\n"
        + crc
        + b"\n-----END PGP SIGNATURE-----\n"
    )


def _double_signature(prov: bytes) -> bytes:
    head, packets = _armor_parts(prov)
    b64 = base64.b64encode(packets + packets)
    return head + b"-----BEGIN PGP SIGNATURE-----\n\n" + b64 + b"\n-----END PGP SIGNATURE-----\n"


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_provenance(pgp_key: PgpKey, case: str) -> None:
    prov = MALFORMED[case](_genuine(pgp_key))
    with pytest.raises(GateError) as e:
        verify_provenance(prov, chart_tgz(), name="demo", version="0.1.0", keys=keys_of(pgp_key))
    assert reason(e) == "malformed-provenance", e.value.diagnostics()


def test_binary_signature_instead_of_cleartext(pgp_key: PgpKey) -> None:
    # A detached binary-mode (type 0x00) signature over the same text is not a .prov.
    text = body("demo", "0.1.0", {"demo-0.1.0.tgz": chart_tgz()}).rstrip(b"\n")
    sig = pgp_key.sign_detached(text.replace(b"\n", b"\r\n"), armor=False)
    prov = (
        b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        + text
        + b"\n-----BEGIN PGP SIGNATURE-----\n\n"
        + base64.b64encode(sig)
        + b"\n-----END PGP SIGNATURE-----\n"
    )
    with pytest.raises(GateError) as e:
        parse_provenance(prov)
    assert reason(e) == "malformed-provenance"


# --- archive reading -----------------------------------------------------------------------------


ARCHIVES = {
    "symlink": lambda: make_tgz({"demo/Chart.yaml": b"name: demo\nversion: 0.1.0\n"},
                                links={"demo/x": "/etc/passwd"}),
    "dotdot": lambda: make_tgz({"demo/Chart.yaml": b"name: demo\nversion: 0.1.0\n",
                                "demo/../../evil": b"x"}),
    "absolute": lambda: make_tgz({"/demo/Chart.yaml": b"name: demo\nversion: 0.1.0\n"}),
    "two-tops": lambda: make_tgz({"demo/Chart.yaml": b"name: demo\nversion: 0.1.0\n",
                                  "other/x": b"x"}),
    "no-chart-yaml": lambda: make_tgz({"demo/values.yaml": b"{}"}),
    "duplicate": lambda: make_tgz({"demo/Chart.yaml": b"name: demo\nversion: 0.1.0\n",
                                   "./demo/Chart.yaml": b"name: evil\nversion: 0.1.0\n"}),
    "not-gzip": lambda: b"not an archive",
    "items-list": lambda: make_tgz({"demo/Chart.yaml": b"name: x\nversion: 1.0.0\n"
                                    b"items: [{name: demo, version: 0.1.0}]\n"}),
    "duplicate-key": lambda: make_tgz({"demo/Chart.yaml":
                                       b"name: demo\nname: x\nversion: 0.1.0\n"}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_unsafe_or_unreadable_archives(case: str) -> None:
    with pytest.raises(MalformedChartError):
        read_chart_archive(ARCHIVES[case]())


def test_oversized_member_is_refused_before_reading() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("demo/big")
        info.size = 6 * 1024 * 1024
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    with pytest.raises(MalformedChartError, match="larger than"):
        read_chart_archive(buf.getvalue())


def test_archive_identity_is_read_from_the_top_directory() -> None:
    got = read_chart_archive(chart_tgz("demo", "1.2.3", top="anything"))
    assert (got.name, got.version, got.top) == ("demo", "1.2.3", "anything")
