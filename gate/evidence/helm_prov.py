"""Helm provenance (``.prov``): parse, verify the PGP signature, bind it to the archive.

A ``.prov`` is an OpenPGP cleartext-signed message (RFC 4880 §7)::

    -----BEGIN PGP SIGNED MESSAGE-----
    Hash: SHA512

    <chart metadata as Helm re-serialises it (YAML)>
    ...
    files:
      <name>-<version>.tgz: sha256:<hex>
    -----BEGIN PGP SIGNATURE-----

    <base64 signature packet>
    =CRC24             (helm 4 leaves this line out)
    -----END PGP SIGNATURE-----

What this module adds to ``helm verify``:

- the signed file hash is looked up under the EXPECTED file name
  ``<name>-<version>.tgz`` (the dependency the source asked for), never under
  whatever name the archive was served as;
- the signed metadata's name/version must equal the dependency's AND the
  ``Chart.yaml`` inside the archive (helm never compares them: a genuine
  ``.prov`` for chart A next to chart A's archive relabelled as B passes it);
- trust comes only from the policy's PGP keys, through the one gpg seam
  (:mod:`gate.evidence.sigtools`); expired and revoked keys deny.

How the signature is checked: we parse the armor ourselves and hand gpg the
*binary* signature packet as a detached signature, with the signed text in its
canonical form (RFC 4880 §7.1: dash-escapes removed, trailing spaces/tabs
stripped, CRLF line ends, no final line end). A cleartext signature is a
canonical-text (type 0x01) signature over exactly those bytes, and it is the
same text we parse, so what is verified is what is read. This also sidesteps
the helm 4 armor without a CRC24 line (gpg exits 2 on it while printing
GOODSIG): the CRC, when present, is checked here, and gpg never sees the armor,
so its exit code and status lines can be taken as they are.

Pure: no network; the only process is gpg, via ``sigtools.PgpKeyring``.

Reason codes: ``malformed-provenance``, ``untrusted-signer``, ``bad-signature``,
``key-expired``, ``key-revoked``, ``threshold-not-met``, ``digest-mismatch``
(signed file hash), ``chart-mismatch`` (file name, name/version),
``malformed-chart`` (the archive).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import posixpath
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from gate.errors import (
    DigestMismatchError,
    GateError,
    ThresholdError,
    VerificationError,
)
from gate.evidence.sigtools import PgpKeyring, UntrustedSignerError
from gate.yamlstrict import load_all

__all__ = [
    "MAX_ARCHIVE_BYTES",
    "MAX_PROVENANCE_BYTES",
    "ChartArchive",
    "ChartMismatchError",
    "MalformedChartError",
    "MalformedProvenanceError",
    "Provenance",
    "ProvenanceVerified",
    "chart_file_name",
    "parse_provenance",
    "read_chart_archive",
    "verify_provenance",
]

MAX_PROVENANCE_BYTES = 1024 * 1024
#: A packaged chart (compressed). Helm's own loader caps the decompressed size below.
MAX_ARCHIVE_BYTES = 20 * 1024 * 1024
#: Helm's loader limits (pkg/chart/loader: MaxDecompressedChartSize / MaxDecompressedFileSize).
MAX_DECOMPRESSED_BYTES = 100 * 1024 * 1024
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_MEMBERS = 10_000
MAX_CHART_YAML_BYTES = 1024 * 1024

_BEGIN_MESSAGE = "-----BEGIN PGP SIGNED MESSAGE-----"
_BEGIN_SIGNATURE = "-----BEGIN PGP SIGNATURE-----"
_END_SIGNATURE = "-----END PGP SIGNATURE-----"
#: Armor ``Hash:`` names and the OpenPGP hash algorithm ids they must agree with.
_HASHES = {"SHA256": 8, "SHA384": 9, "SHA512": 10, "SHA224": 11}
_ARMOR_HEADER = re.compile(r"([A-Za-z][A-Za-z0-9-]*): (.*)")
_B64_LINE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_SHA256 = re.compile(r"sha256:([0-9a-f]{64})")


class MalformedProvenanceError(VerificationError):
    reason = "malformed-provenance"


class ChartMismatchError(VerificationError):
    reason = "chart-mismatch"


class MalformedChartError(VerificationError):
    reason = "malformed-chart"


def chart_file_name(name: str, version: str) -> str:
    """The archive name Helm packages and signs: ``<name>-<version>.tgz``."""
    return f"{name}-{version}.tgz"


# --- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """A parsed ``.prov``; nothing in it is trusted until :func:`verify_provenance` says so."""

    hash_name: str  # the armor's Hash: header, e.g. "SHA512"
    signed_text: bytes  # the canonical bytes the signature covers (CRLF line ends)
    signature: bytes  # the binary OpenPGP signature packet
    metadata: Mapping[str, Any]  # the chart metadata part
    files: Mapping[str, str]  # file name -> "sha256:<hex>"

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])


def _malformed(message: str, **kw: str) -> MalformedProvenanceError:
    return MalformedProvenanceError(
        f"the provenance file is malformed: {message}",
        hint=kw.pop("hint", "re-create it with 'helm package --sign'"),
        **kw,
    )


def parse_provenance(data: bytes) -> Provenance:
    """Split and check a ``.prov``; raise :class:`MalformedProvenanceError` on anything odd."""
    if len(data) > MAX_PROVENANCE_BYTES:
        raise _malformed(f"{len(data)} bytes, more than {MAX_PROVENANCE_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("not UTF-8 text") from None
    text = text.replace("\r\n", "\n")
    if "\r" in text or "\x00" in text:
        raise _malformed("a bare carriage return or NUL byte")
    lines = text.strip("\n").split("\n")
    if not lines or lines[0].rstrip(" \t") != _BEGIN_MESSAGE:
        raise _malformed(
            "it does not start with " + _BEGIN_MESSAGE,
            found=repr(lines[0][:60]) if lines else "empty",
        )
    pos = 1
    hashes: list[str] = []
    while pos < len(lines) and lines[pos].strip(" \t"):
        m = _ARMOR_HEADER.fullmatch(lines[pos].rstrip(" \t"))
        if m is None or m.group(1) != "Hash":
            raise _malformed("a cleartext armor header other than 'Hash:'", found=lines[pos][:80])
        hashes += [h.strip() for h in m.group(2).split(",")]
        pos += 1
    if len(hashes) != 1 or hashes[0] not in _HASHES:
        raise _malformed(
            "the message must name exactly one SHA-2 hash",
            found=", ".join(hashes) or "no Hash: header (MD5 by default)",
            expected="Hash: SHA512 (or SHA256, SHA384, SHA224)",
        )
    pos += 1  # the blank line
    body: list[str] = []
    while pos < len(lines) and lines[pos].rstrip(" \t") != _BEGIN_SIGNATURE:
        line = lines[pos]
        if line.startswith("-"):
            if not line.startswith("- "):
                raise _malformed("a line starting with '-' that is not dash-escaped")
            line = line[2:]
        body.append(line.rstrip(" \t"))
        pos += 1
    if pos >= len(lines):
        raise _malformed("no " + _BEGIN_SIGNATURE + " line")
    signature = _dearmor(lines[pos + 1 :])
    hash_algo = _check_signature_packet(signature)
    if hash_algo != _HASHES[hashes[0]]:
        raise _malformed(
            "the armor's Hash: header disagrees with the signature's hash algorithm",
            found=f"Hash: {hashes[0]}, signature hash id {hash_algo}",
        )
    signed_text = "\r\n".join(body).encode("utf-8")
    metadata, files = _parse_body("\n".join(body))
    return Provenance(hashes[0], signed_text, signature, metadata, files)


def _dearmor(lines: list[str]) -> bytes:
    """The signature block after its BEGIN line: headers, blank line, base64, =CRC, END."""
    pos = 0
    while pos < len(lines) and lines[pos].strip(" \t"):
        if _ARMOR_HEADER.fullmatch(lines[pos].rstrip(" \t")) is None:
            raise _malformed("the signature armor has no blank line after its headers")
        pos += 1
    pos += 1
    b64: list[str] = []
    crc: str | None = None
    while pos < len(lines) and lines[pos].rstrip(" \t") != _END_SIGNATURE:
        line = lines[pos].strip(" \t")
        if crc is not None:
            raise _malformed("data after the armor checksum")
        if line.startswith("=") and len(line) == 5:
            crc = line[1:]
        elif _B64_LINE.fullmatch(line):
            b64.append(line)
        else:
            raise _malformed("the signature armor holds a line that is not base64")
        pos += 1
    if pos >= len(lines):
        raise _malformed("no " + _END_SIGNATURE + " line")
    if any(line.strip(" \t") for line in lines[pos + 1 :]):
        raise _malformed("text after the signature block")
    try:
        packets = base64.b64decode("".join(b64), validate=True)
        expected = base64.b64decode(crc, validate=True) if crc is not None else None
    except (binascii.Error, ValueError):
        raise _malformed("the signature armor is not valid base64") from None
    if not packets:
        raise _malformed("the signature block is empty")
    if expected is not None and _crc24(packets).to_bytes(3, "big") != expected:
        raise _malformed("the signature armor's CRC24 checksum does not match")
    return packets


def _crc24(data: bytes) -> int:
    # RFC 4880 §6.1.
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _check_signature_packet(packets: bytes) -> int:
    """Exactly one v4 canonical-text signature packet; return its hash algorithm id."""
    tag, body, rest = _packet(packets)
    if tag != 2:
        raise _malformed(f"the signature block holds an OpenPGP packet of type {tag}")
    if rest:
        raise _malformed("the signature block holds more than one packet")
    if len(body) < 4 or body[0] != 4:
        raise _malformed("not a version 4 OpenPGP signature")
    if body[1] != 0x01:
        raise _malformed(
            f"signature type 0x{body[1]:02x}, not a cleartext (canonical text, 0x01) signature"
        )
    return body[3]


def _packet(data: bytes) -> tuple[int, bytes, bytes]:
    """One OpenPGP packet: (tag, body, the bytes after it). Partial lengths are refused."""
    if not data or not data[0] & 0x80:
        raise _malformed("the signature block is not an OpenPGP packet")
    first = data[0]
    if first & 0x40:  # new format
        tag = first & 0x3F
        if len(data) < 2:
            raise _malformed("truncated OpenPGP packet")
        o = data[1]
        if o < 192:
            length, start = o, 2
        elif o < 224:
            if len(data) < 3:
                raise _malformed("truncated OpenPGP packet")
            length, start = ((o - 192) << 8) + data[2] + 192, 3
        elif o == 255:
            if len(data) < 6:
                raise _malformed("truncated OpenPGP packet")
            length, start = int.from_bytes(data[2:6], "big"), 6
        else:
            raise _malformed("partial-length OpenPGP packets are not accepted")
    else:  # old format
        tag = (first >> 2) & 0x0F
        kind = first & 0x03
        if kind == 3:
            raise _malformed("indeterminate-length OpenPGP packets are not accepted")
        n = 1 << kind
        if len(data) < 1 + n:
            raise _malformed("truncated OpenPGP packet")
        length, start = int.from_bytes(data[1 : 1 + n], "big"), 1 + n
    if start + length > len(data):
        raise _malformed("truncated OpenPGP packet")
    return tag, data[start : start + length], data[start + length :]


def _one_mapping(text: str, what: str) -> dict[str, Any]:
    try:
        docs = load_all(text, source=what, max_bytes=MAX_PROVENANCE_BYTES)
    except GateError as e:
        raise _malformed(f"{what} is not valid YAML", found=e.message) from None
    if len(docs) != 1:
        raise _malformed(f"{what} is not one YAML mapping")
    return docs[0]


def _parse_body(body: str) -> tuple[dict[str, Any], dict[str, str]]:
    # Helm splits the message on "\n...\n": chart metadata, then the checksums.
    parts = body.split("\n...\n")
    if len(parts) != 2:
        raise _malformed(
            "the signed message must be chart metadata, '...', then 'files:'",
            found=f"{len(parts)} part(s)",
        )
    metadata = _one_mapping(parts[0], "the signed chart metadata")
    for field in ("name", "version"):
        if not isinstance(metadata.get(field), str) or not metadata[field]:
            raise _malformed(f"the signed chart metadata has no string {field!r}")
    sums = _one_mapping(parts[1], "the signed checksums")
    if set(sums) - {"files", "images"}:
        raise _malformed("unknown keys in the checksum part", found=", ".join(sorted(sums)))
    files = sums.get("files")
    if not isinstance(files, dict) or not files:
        raise _malformed("the signed checksums have no 'files' mapping")
    out: dict[str, str] = {}
    for name, digest in files.items():
        if not isinstance(name, str) or not isinstance(digest, str):
            raise _malformed("a 'files' entry is not 'name: sha256:<hex>'")
        if not _SHA256.fullmatch(digest):
            raise _malformed(f"the checksum of {name!r} is not sha256:<64 hex>", found=digest)
        out[name] = digest
    return metadata, out


# --- the archive -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartArchive:
    """What a packaged chart says about itself (its ``Chart.yaml``), read without extracting."""

    name: str
    version: str
    chart_yaml: Mapping[str, Any]
    top: str  # the archive's top-level directory


def _bad_archive(message: str, **kw: str) -> MalformedChartError:
    return MalformedChartError(f"the chart archive is unsafe or unreadable: {message}", **kw)


def read_chart_archive(archive: bytes) -> ChartArchive:
    """Check a ``.tgz`` member by member (``tarfile`` ``filter="data"`` rules, and stricter:
    regular files and directories only, one top-level directory, no duplicates, size and
    count caps) and read its ``<top>/Chart.yaml``. Nothing is written to disk."""
    if len(archive) > MAX_ARCHIVE_BYTES:
        raise _bad_archive(f"{len(archive)} bytes, more than {MAX_ARCHIVE_BYTES}")
    seen: set[str] = set()
    tops: set[str] = set()
    total = 0
    chart_yaml: bytes | None = None
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for count, member in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise _bad_archive(f"more than {MAX_MEMBERS} entries")
                name = _member_name(member.name)
                if not (member.isfile() or member.isdir()):
                    raise _bad_archive(
                        f"{member.name!r} is not a regular file or directory",
                        hint="helm package writes files only; links and devices are refused",
                    )
                if name in seen:
                    raise _bad_archive(f"{member.name!r} appears twice")
                seen.add(name)
                tops.add(name.split("/", 1)[0])
                if member.isfile():
                    if member.size > MAX_FILE_BYTES:
                        raise _bad_archive(f"{member.name!r} is larger than {MAX_FILE_BYTES}")
                    total += member.size
                    if total > MAX_DECOMPRESSED_BYTES:
                        raise _bad_archive(f"more than {MAX_DECOMPRESSED_BYTES} bytes unpacked")
                    parts = name.split("/")
                    if len(parts) == 2 and parts[1] == "Chart.yaml":
                        if member.size > MAX_CHART_YAML_BYTES:
                            raise _bad_archive("Chart.yaml is too large")
                        extracted = tar.extractfile(member)
                        if extracted is None:  # pragma: no cover - isfile() said it is a file
                            raise _bad_archive("Chart.yaml cannot be read")
                        chart_yaml = extracted.read(MAX_CHART_YAML_BYTES + 1)
    except (tarfile.TarError, OSError, EOFError) as e:  # gzip errors are OSError
        raise _bad_archive(f"not a gzip-compressed tar archive ({type(e).__name__}: {e})") from None
    if len(tops) != 1:
        raise _bad_archive(
            "the archive must hold exactly one top-level directory",
            found=", ".join(sorted(tops))[:200] or "nothing",
        )
    top = tops.pop()
    if chart_yaml is None:
        raise _bad_archive(f"no {top}/Chart.yaml")
    meta = load_chart_yaml(chart_yaml, f"{top}/Chart.yaml in the archive")
    return ChartArchive(str(meta["name"]), str(meta["version"]), meta, top)


def _member_name(raw: str) -> str:
    name = raw.removeprefix("./")
    if (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or posixpath.isabs(name)
        or ".." in name.split("/")
    ):
        raise _bad_archive(f"unsafe member name {raw!r}")
    return posixpath.normpath(name)


def load_chart_yaml(data: bytes, what: str) -> dict[str, Any]:
    """A ``Chart.yaml``: one strict YAML mapping with string ``name`` and ``version``.

    ``MalformedChartError`` otherwise. A top-level ``items`` list is refused: the strict
    loader flattens list objects, which would hide the real top-level name.
    """
    try:
        docs = load_all(data, source=what, max_bytes=MAX_CHART_YAML_BYTES)
        # Safe after the strict pass (aliases bounded, no duplicate keys); only to see the
        # top level as Helm does.
        top = yaml.safe_load(data)
    except GateError as e:
        raise MalformedChartError(f"{what} is not valid YAML", found=e.message) from None
    except yaml.YAMLError as e:  # pragma: no cover - the strict pass comes first
        raise MalformedChartError(f"{what} is not valid YAML: {e}") from None
    if len(docs) != 1 or not isinstance(top, dict) or "items" in top:
        raise MalformedChartError(f"{what} is not one YAML mapping")
    doc = docs[0]
    for field in ("name", "version"):
        if not isinstance(doc.get(field), str) or not doc[field]:
            raise MalformedChartError(f"{what} has no string {field!r}")
    return doc


# --- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvenanceVerified:
    """A ``.prov`` that held for this archive, with who signed it."""

    name: str
    version: str
    file_name: str
    digest: str  # "sha256:<hex>" of the archive (= the signed file hash)
    signer_fingerprint: str  # primary key fingerprint
    key_names: frozenset[str]  # the policy names of that key
    hash_name: str


def verify_provenance(
    provenance: bytes,
    archive: bytes,
    *,
    name: str,
    version: str,
    keys: Mapping[str, str],
    threshold: int = 1,
    now: dt.datetime | None = None,
) -> ProvenanceVerified:
    """Verify ``provenance`` for ``archive``, the chart ``name`` at ``version``.

    ``keys``: policy key name -> ASCII-armored PGP public key (the rule's
    ``provenance.signers``; nothing else is trusted); ``now``: the time at which key
    expiry and revocation are judged (the engine's clock; default gpg's). Order of checks: format,
    signature and signer, threshold, the signed hash of ``<name>-<version>.tgz``
    against the archive bytes, then the signed metadata and the archive's own
    ``Chart.yaml`` against ``name``/``version``. Raises a ``VerificationError``
    with the reason, or returns what held.
    """
    prov = parse_provenance(provenance)
    with PgpKeyring(keys, now) as keyring:
        try:
            signer = keyring.verify(prov.signed_text, prov.signature)
        except UntrustedSignerError as e:
            e.hint = "sign the chart with a key in this rule's provenance.signers, or add the key"
            raise
    if threshold > 1:
        raise ThresholdError(
            f"the provenance carries one signature ({'/'.join(sorted(signer.key_names))}); "
            f"the rule requires {threshold} distinct signers",
            hint="a .prov holds a single signature: lower provenance.threshold to 1",
        )
    file_name = chart_file_name(name, version)
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    signed = prov.files.get(file_name)
    if signed is None:
        raise ChartMismatchError(
            f"the provenance signs no file named {file_name}",
            found=", ".join(sorted(prov.files)),
            expected=file_name,
            hint="this .prov belongs to another chart or version",
        )
    if signed != digest:
        raise DigestMismatchError(
            f"the archive's hash is not the one the provenance signs for {file_name}",
            found=digest,
            expected=signed,
            hint="the archive was changed after signing, or is another build",
        )
    if (prov.name, prov.version) != (name, version):
        raise ChartMismatchError(
            "the provenance's signed chart metadata names another chart",
            found=f"{prov.name} {prov.version}",
            expected=f"{name} {version}",
        )
    check_archive_identity(read_chart_archive(archive), name, version)
    return ProvenanceVerified(
        name,
        version,
        file_name,
        digest,
        signer.primary_fingerprint,
        signer.key_names,
        prov.hash_name,
    )


def check_archive_identity(chart: ChartArchive, name: str, version: str) -> None:
    """The archive's own ``Chart.yaml`` must be the chart that was asked for."""
    if (chart.name, chart.version) != (name, version):
        raise ChartMismatchError(
            "the archive's Chart.yaml names another chart than the one asked for",
            found=f"{chart.name} {chart.version}",
            expected=f"{name} {version}",
            hint="the repository serves another chart under this name/version",
        )
