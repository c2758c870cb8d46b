"""Git objects as signed evidence: parse raw commits, tags and trees; count signers.

Pure functions over the bytes ``git cat-file`` returns. We never trust the text of
``git verify-commit``/``verify-tag``: we split each object into the payload that was
signed and the signature ourselves, exactly as git does (``commit.c``
``parse_buffer_signed_by_header``, ``gpg-interface.c`` ``parse_signed_buffer``), and
hand both to the signature tools.

Every object is re-hashed against the id it was read under: a ``.git`` that arrives
with the sources (Argo CD streams it in the plugin tarball) is untrusted, and a
tampered loose object would otherwise let a tree or commit say something other than
what the signature covers. Anything that does not parse is a deny, never a pass.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from gate.errors import VerificationError
from gate.policy.glob import glob_match

ObjectFormat = Literal["sha1", "sha256"]
SignatureKind = Literal["pgp", "ssh", "x509"]

#: Hex length of an object id per object format.
OID_HEX_LEN: Mapping[str, int] = {"sha1": 40, "sha256": 64}
#: The commit header that carries the signature for each object format (git's
#: ``gpg_sig_headers``). A SHA-256 repository signs with ``gpgsig-sha256``.
SIGNATURE_HEADER: Mapping[str, bytes] = {"sha1": b"gpgsig", "sha256": b"gpgsig-sha256"}

#: Armor markers git recognises (``gpg-interface.c`` ``sigs[]``) and what they are.
_MARKERS: tuple[tuple[bytes, SignatureKind], ...] = (
    (b"-----BEGIN PGP SIGNATURE-----", "pgp"),
    (b"-----BEGIN PGP MESSAGE-----", "pgp"),
    (b"-----BEGIN SSH SIGNATURE-----", "ssh"),
    (b"-----BEGIN SIGNED MESSAGE-----", "x509"),
)
_END_MARKER = re.compile(rb"-----END [A-Z ]+-----\n?\Z")
_TAG_NAME = re.compile(r"[^\x00-\x20\x7f~^:?*\[\\]+")  # git check-ref-format, roughly

#: Objects larger than this are refused before parsing (a commit or tag is a few KiB).
MAX_OBJECT_BYTES = 1024 * 1024


class MalformedObjectError(VerificationError):
    """A Git object that does not parse: denied, because it cannot be judged."""

    reason = "malformed-object"


@dataclass(frozen=True)
class GitSignature:
    """An armored signature block as git stored it."""

    kind: SignatureKind
    armored: bytes


@dataclass(frozen=True)
class SignedPayload:
    """What a signature covers (``payload``) and the signature, if there is one."""

    payload: bytes
    signature: GitSignature | None


@dataclass(frozen=True)
class Commit:
    oid: str
    tree: str
    parents: tuple[str, ...]
    committer: str
    signed: SignedPayload


@dataclass(frozen=True)
class Tag:
    """An annotated tag object."""

    oid: str
    target: str
    target_type: str
    name: str  # the object's own ``tag`` field, NOT the ref it was found under
    tagger: str | None
    signed: SignedPayload


@dataclass(frozen=True)
class TreeEntry:
    mode: str  # "100644", "100755", "120000" (symlink), "40000" (tree), "160000" (gitlink)
    name: str
    oid: str

    @property
    def kind(self) -> Literal["blob", "symlink", "tree", "gitlink"]:
        if self.mode == "40000":
            return "tree"
        if self.mode == "120000":
            return "symlink"
        if self.mode == "160000":
            return "gitlink"
        return "blob"


# -- hashing ----------------------------------------------------------------------


def object_id(kind: str, body: bytes, fmt: ObjectFormat) -> str:
    """Git's object id: ``H("<kind> <len>\\0" + body)``."""
    h = hashlib.sha1(usedforsecurity=False) if fmt == "sha1" else hashlib.sha256()
    h.update(b"%s %d\x00" % (kind.encode(), len(body)))
    h.update(body)
    return h.hexdigest()


def check_object_id(oid: str, kind: str, body: bytes, fmt: ObjectFormat) -> None:
    """Refuse an object whose bytes do not hash to the id it was read under.

    Stops a tampered object store: a planted loose object for a signed commit's tree
    would otherwise change which files count as "signed".
    """
    actual = object_id(kind, body, fmt)
    if actual != oid:
        raise MalformedObjectError(
            f"the {kind} object {oid} in .git does not hash to its id",
            found=actual,
            expected=oid,
            hint="the repository's object store was modified; re-clone it",
        )


def _check_oid(value: bytes, fmt: ObjectFormat, what: str) -> str:
    text = value.decode("ascii", "replace")
    if len(text) != OID_HEX_LEN[fmt] or not re.fullmatch(r"[0-9a-f]+", text):
        raise MalformedObjectError(f"{what} is not a {fmt} object id", found=text[:80])
    return text


# -- signatures -------------------------------------------------------------------


def _signature(block: bytes, what: str) -> GitSignature:
    for marker, kind in _MARKERS:
        if block.startswith(marker + b"\n"):
            if not _END_MARKER.search(block):
                raise MalformedObjectError(f"the signature of {what} is not a complete armor block")
            return GitSignature(kind, block)
    first = block.split(b"\n", 1)[0][:60].decode("utf-8", "replace")
    raise MalformedObjectError(f"the signature of {what} has an unknown format", found=first)


def _split_headers(raw: bytes, what: str) -> tuple[list[bytes], bytes]:
    """Header lines (with their continuation lines, newline-terminated) and the message."""
    end = raw.find(b"\n\n")
    if end < 0:
        # A message-less object still ends its headers with a newline.
        if not raw.endswith(b"\n"):
            raise MalformedObjectError(f"{what} has no header terminator")
        head, message = raw, b""
    else:
        head, message = raw[: end + 1], raw[end + 2 :]
    lines = head.splitlines(keepends=True)
    if any(not ln.endswith(b"\n") for ln in lines):
        raise MalformedObjectError(f"{what} has an unterminated header line")
    return lines, message


def split_commit_signature(raw: bytes, fmt: ObjectFormat, what: str) -> SignedPayload:
    """Take the ``gpgsig`` (SHA-1) / ``gpgsig-sha256`` header out of a commit.

    As git does: the payload is the commit without this format's signature header
    and without any other ``gpgsig*`` header (a compatibility signature for the other
    hash is not part of what this one signs). More than one signature header of our
    format is refused: git would concatenate them into something no signer made.
    """
    header = SIGNATURE_HEADER[fmt]
    end = raw.find(b"\n\n")
    head, rest = (raw[: end + 1], raw[end + 1 :]) if end >= 0 else (raw, b"")
    payload: list[bytes] = []
    signature: list[bytes] = []
    seen = 0
    state: Literal["none", "ours", "other"] = "none"
    for line in head.splitlines(keepends=True):
        if state != "none" and line.startswith(b" "):
            if state == "ours":
                signature.append(line[1:])
            continue
        state = "none"
        name = line.split(b" ", 1)[0]
        if name == header:
            seen += 1
            state = "ours"
            signature.append(line[len(header) + 1 :])
        elif name.startswith(b"gpgsig"):
            state = "other"
        else:
            payload.append(line)
    if seen > 1:
        raise MalformedObjectError(f"{what} carries {seen} {header.decode()} headers")
    body = b"".join(payload) + rest
    if not seen:
        return SignedPayload(body, None)
    return SignedPayload(body, _signature(b"".join(signature), what))


def split_tag_signature(raw: bytes, what: str) -> SignedPayload:
    """The signature of a tag follows its message; git takes the LAST line that starts
    with a known armor marker as its start (``parse_signed_buffer``)."""
    start = -1
    offset = 0
    for line in raw.splitlines(keepends=True):
        if any(line.startswith(m) for m, _ in _MARKERS):
            start = offset
        offset += len(line)
    if start < 0:
        return SignedPayload(raw, None)
    return SignedPayload(raw[:start], _signature(raw[start:], what))


# -- objects ----------------------------------------------------------------------


def _single(headers: Sequence[tuple[bytes, bytes]], key: bytes, what: str) -> bytes:
    values = [v for k, v in headers if k == key]
    if len(values) != 1:
        raise MalformedObjectError(
            f"{what} has {len(values)} '{key.decode()}' headers", expected="exactly one"
        )
    return values[0]


def _parse_headers(lines: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for line in lines:
        if line.startswith(b" "):
            continue  # continuation of a multi-line header (gpgsig, mergetag)
        key, sep, value = line.rstrip(b"\n").partition(b" ")
        if not sep or not key:
            raise MalformedObjectError("a header line has no value", found=repr(line[:60]))
        out.append((key, value))
    return out


def parse_commit(oid: str, raw: bytes, fmt: ObjectFormat) -> Commit:
    """Parse a commit read from ``git cat-file commit <oid>`` (hash checked)."""
    what = f"commit {oid}"
    if len(raw) > MAX_OBJECT_BYTES:
        raise MalformedObjectError(f"{what} is larger than {MAX_OBJECT_BYTES} bytes")
    check_object_id(oid, "commit", raw, fmt)
    signed = split_commit_signature(raw, fmt, what)
    lines, _ = _split_headers(raw, what)
    headers = _parse_headers(lines)
    if not headers or headers[0][0] != b"tree":
        raise MalformedObjectError(f"{what} does not start with a tree header")
    tree = _check_oid(_single(headers, b"tree", what), fmt, "the commit's tree")
    parents = tuple(_check_oid(v, fmt, "a parent") for k, v in headers if k == b"parent")
    committer = _single(headers, b"committer", what).decode("utf-8", "replace")
    _single(headers, b"author", what)
    return Commit(oid, tree, parents, committer, signed)


def parse_tag(oid: str, raw: bytes, fmt: ObjectFormat) -> Tag:
    """Parse an annotated tag read from ``git cat-file tag <oid>`` (hash checked)."""
    what = f"tag object {oid}"
    if len(raw) > MAX_OBJECT_BYTES:
        raise MalformedObjectError(f"{what} is larger than {MAX_OBJECT_BYTES} bytes")
    check_object_id(oid, "tag", raw, fmt)
    signed = split_tag_signature(raw, what)
    lines, _ = _split_headers(raw, what)
    headers = _parse_headers(lines)
    keys = [k for k, _ in headers[:3]]
    if keys != [b"object", b"type", b"tag"]:
        raise MalformedObjectError(
            f"{what} does not start with object, type and tag headers",
            found=", ".join(k.decode("utf-8", "replace") for k in keys),
        )
    target = _check_oid(_single(headers, b"object", what), fmt, "the tag's object")
    target_type = _single(headers, b"type", what).decode("ascii", "replace")
    name = _single(headers, b"tag", what).decode("utf-8", "replace")
    if not _TAG_NAME.fullmatch(name):
        raise MalformedObjectError(f"{what} has an invalid tag name", found=repr(name))
    taggers = [v for k, v in headers if k == b"tagger"]
    if len(taggers) > 1:
        raise MalformedObjectError(f"{what} has {len(taggers)} tagger headers")
    tagger = taggers[0].decode("utf-8", "replace") if taggers else None
    return Tag(oid, target, target_type, name, tagger, signed)


def parse_tree(oid: str, raw: bytes, fmt: ObjectFormat) -> tuple[TreeEntry, ...]:
    """Parse a binary tree object: ``<mode> SP <name> NUL <raw id>`` repeated."""
    check_object_id(oid, "tree", raw, fmt)
    size = OID_HEX_LEN[fmt] // 2
    out: list[TreeEntry] = []
    names: set[str] = set()
    i = 0
    while i < len(raw):
        sp = raw.find(b" ", i)
        nul = raw.find(b"\x00", sp + 1) if sp >= 0 else -1
        if sp < 0 or nul < 0 or nul + 1 + size > len(raw):
            raise MalformedObjectError(f"tree {oid} is truncated")
        mode = raw[i:sp].decode("ascii", "replace")
        name = raw[sp + 1 : nul].decode("utf-8", "surrogateescape")
        if mode not in ("100644", "100755", "120000", "40000", "160000", "100664"):
            raise MalformedObjectError(f"tree {oid} has an entry with mode {mode!r}")
        # A tree naming '..', '.', '.git' or a path with '/' is a path-traversal vector.
        if name in ("", ".", "..") or "/" in name or name.lower() == ".git" or name in names:
            raise MalformedObjectError(f"tree {oid} has an unsafe entry name", found=repr(name))
        names.add(name)
        out.append(TreeEntry(mode, name, raw[nul + 1 : nul + 1 + size].hex()))
        i = nul + 1 + size
    return tuple(out)


# -- tag semantics ----------------------------------------------------------------


def is_release_tag(ref_name: str, patterns: Sequence[str]) -> bool:
    """Whether a tag name (without ``refs/tags/``) is a release by the policy's globs."""
    return any(glob_match(p, ref_name) for p in patterns)


# -- threshold --------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedSigner:
    """One valid signature: who physically signed, and which policy keys that is."""

    identity: str  # SSH/PGP fingerprint or keyless "issuer subject": the physical signer
    key_names: frozenset[str]  # the policy keys this signature satisfies
    where: str  # e.g. "tag v1.2.0", for messages


def distinct_signers(signers: Iterable[VerifiedSigner]) -> frozenset[str]:
    """The largest set of policy keys that distinct signers account for, one key each.

    A threshold counts signers, never signatures: two signatures by one key (a signed
    tag and its signed commit) count once, and one key listed under two policy names
    cannot satisfy two slots. Signatures are grouped by physical signer, then matched
    to key names (maximum bipartite matching; the sets are tiny).
    """
    groups: dict[str, set[str]] = {}
    for s in signers:
        groups.setdefault(s.identity, set()).update(s.key_names)
    owner: dict[str, str] = {}  # key name -> physical signer

    def assign(who: str, seen: set[str]) -> bool:
        for name in sorted(groups[who]):
            if name in seen:
                continue
            seen.add(name)
            if name not in owner or assign(owner[name], seen):
                owner[name] = who
                return True
        return False

    for who in sorted(groups):
        assign(who, set())
    return frozenset(owner)
