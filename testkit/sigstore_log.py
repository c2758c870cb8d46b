"""A Rekor-v1-like transparency log: an append-only RFC 6962 Merkle tree and its signatures.

A Rekor v1 entry proves itself three ways, and a verifier may check any of them:
- the Signed Entry Timestamp (SET, the "inclusion promise"): an ECDSA signature by the log
  key over the RFC 8785 canonical JSON of ``{body, integratedTime, logID, logIndex}``;
- an inclusion proof (RFC 6962 section 2.1.1 audit path) from the entry's leaf hash to a
  tree root;
- a checkpoint: a signed note (transparency-dev ``formats/log``) that commits the log to
  that root at that tree size.
The tree is real, so entries deep in the log get non-trivial audit paths.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from testkit.sigstore_certs import key_id, new_key


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 section 2.1: ``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 section 2.1: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (RFC 6962 section 2.1)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass
class MerkleTree:
    """Append-only list of leaf hashes with RFC 6962 tree hashes and audit paths.

    Hashes of complete subtrees (power-of-two size) never change once their leaves exist,
    so they are memoised: a root or an audit path then costs O(log n) fresh hashes and
    a session that logs thousands of entries stays fast.
    """

    leaves: list[bytes] = field(default_factory=list)
    _complete: dict[tuple[int, int], bytes] = field(default_factory=dict, repr=False)

    def append(self, data: bytes) -> int:
        """Add a leaf; return its index."""
        self.leaves.append(leaf_hash(data))
        return len(self.leaves) - 1

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self.leaves)

    def root(self, size: int | None = None) -> bytes:
        """``MTH(D[0:size])``."""
        size = self.size if size is None else size
        if not 0 < size <= self.size:
            raise ValueError(f"tree size {size} outside 1..{self.size}")
        return self._mth(0, size)

    def _mth(self, start: int, n: int) -> bytes:
        if n == 1:
            return self.leaves[start]
        if (start, n) in self._complete:
            return self._complete[(start, n)]
        k = _split(n)
        digest = node_hash(self._mth(start, k), self._mth(start + k, n - k))
        if n & (n - 1) == 0:
            self._complete[(start, n)] = digest
        return digest

    def audit_path(self, index: int, size: int | None = None) -> list[bytes]:
        """``PATH(index, D[0:size])``, bottom-up, as Rekor returns and verifiers expect."""
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ValueError(f"leaf {index} not in a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, start: int, n: int) -> list[bytes]:
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, k), self._mth(start + k, n - k)]
        return [*self._path(m - k, start + k, n - k), self._mth(start, k)]


def verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2 inclusion check; used by the self-tests, not by the gate."""
    if index >= size:
        return False
    fn, sn, current = index, size - 1, leaf_hash(leaf)
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            current = node_hash(sibling, current)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            current = node_hash(current, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and current == root


def b64(data: bytes) -> str:
    """Standard base64 text, the encoding of every bytes field in Sigstore JSON."""
    return base64.b64encode(data).decode()


def set_payload(body: bytes, integrated_time: int, log_id: bytes, log_index: int) -> bytes:
    """What a Rekor SET signs: RFC 8785 canonical JSON (keys sorted, no spaces)."""
    return rfc8785.dumps(
        {
            "body": b64(body),
            "integratedTime": integrated_time,
            "logID": log_id.hex(),
            "logIndex": log_index,
        }
    )


@dataclass(frozen=True)
class LogEntry:
    """One logged entry with everything a bundle or cosign annotation carries."""

    kind: str
    version: str
    body: bytes
    log_index: int
    log_id: bytes
    integrated_time: int
    signed_entry_timestamp: bytes
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str

    def to_bundle(self) -> dict[str, Any]:
        """``TransparencyLogEntry`` of sigstore protobuf-specs, in its JSON mapping
        (camelCase, int64 as strings, bytes as base64)."""
        return {
            "logIndex": str(self.log_index),
            "logId": {"keyId": b64(self.log_id)},
            "kindVersion": {"kind": self.kind, "version": self.version},
            "integratedTime": str(self.integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": b64(self.signed_entry_timestamp)},
            "inclusionProof": {
                "logIndex": str(self.log_index),
                "rootHash": b64(self.root_hash),
                "treeSize": str(self.tree_size),
                "hashes": [b64(h) for h in self.hashes],
                "checkpoint": {"envelope": self.checkpoint},
            },
            "canonicalizedBody": b64(self.body),
        }

    def to_cosign_bundle(self) -> dict[str, Any]:
        """The ``dev.sigstore.cosign/bundle`` annotation of cosign <= 2 (``RekorBundle``)."""
        return {
            "SignedEntryTimestamp": b64(self.signed_entry_timestamp),
            "Payload": {
                "body": b64(self.body),
                "integratedTime": self.integrated_time,
                "logIndex": self.log_index,
                "logID": self.log_id.hex(),
            },
        }


@dataclass(frozen=True)
class LogForgery:
    """Ways to make one entry's log evidence wrong while everything else stays valid."""

    #: Sign the SET with ``other_key`` (a key that is not the log's).
    set_key: ec.EllipticCurvePrivateKey | None = None
    #: Sign the checkpoint with ``other_key``.
    checkpoint_key: ec.EllipticCurvePrivateKey | None = None
    #: Corrupt the audit path (or, in a one-leaf tree, the root) so the proof does not
    #: lead to the signed root.
    break_inclusion_proof: bool = False


@dataclass
class TransparencyLog:
    """The log: its key, its origin string and the Merkle tree of canonical bodies."""

    key: ec.EllipticCurvePrivateKey
    origin: str = "rekor.sigstore.test - 1"
    name: str = "rekor.sigstore.test"
    tree: MerkleTree = field(default_factory=MerkleTree)
    bodies: list[tuple[str, str, bytes, int]] = field(default_factory=list)

    @classmethod
    def create(cls) -> TransparencyLog:
        """A log with a fresh P-256 key (as Rekor's public-good instance)."""
        return cls(new_key("p256"))

    @property
    def log_id(self) -> bytes:
        """Rekor's log id: SHA-256 of the DER SPKI of its key."""
        return key_id(self.key)

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The key a verifier trusts for SETs and checkpoints."""
        return self.key.public_key()

    def append(
        self,
        kind: str,
        version: str,
        body: bytes,
        integrated_time: int,
        forgery: LogForgery | None = None,
    ) -> LogEntry:
        """Integrate ``body`` and return the entry proven against the new tree head."""
        index = self.tree.append(body)
        self.bodies.append((kind, version, body, integrated_time))
        return self.entry(index, forgery=forgery)

    def entry(
        self, index: int, *, tree_size: int | None = None, forgery: LogForgery | None = None
    ) -> LogEntry:
        """Entry ``index`` with an inclusion proof against tree size ``tree_size`` (default:
        the current size), the way ``GET /api/v1/log/entries`` answers later."""
        forgery = forgery or LogForgery()
        size = self.tree.size if tree_size is None else tree_size
        kind, version, body, integrated_time = self.bodies[index]
        root, path = self.tree.root(size), self.tree.audit_path(index, size)
        if forgery.break_inclusion_proof:
            if path:
                path[0] = _flip(path[0])
            else:
                root = _flip(root)
        set_signer = forgery.set_key or self.key
        set_signature = set_signer.sign(
            set_payload(body, integrated_time, self.log_id, index), ec.ECDSA(hashes.SHA256())
        )
        checkpoint = self.checkpoint(size, root, signer=forgery.checkpoint_key)
        return LogEntry(
            kind=kind,
            version=version,
            body=body,
            log_index=index,
            log_id=self.log_id,
            integrated_time=integrated_time,
            signed_entry_timestamp=set_signature,
            tree_size=size,
            root_hash=root,
            hashes=tuple(path),
            checkpoint=checkpoint,
        )

    def checkpoint(
        self, size: int, root: bytes, *, signer: ec.EllipticCurvePrivateKey | None = None
    ) -> str:
        """A signed note: ``origin\\nsize\\nb64(root)\\n``, a blank line, then
        ``\u2014 name b64(keyhint[4] || signature)``; Rekor's key hint is the first four
        bytes of its log id."""
        note = f"{self.origin}\n{size}\n{b64(root)}\n"
        signature = (signer or self.key).sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        return f"{note}\n\u2014 {self.name} {b64(self.log_id[:4] + signature)}\n"


def _flip(digest: bytes) -> bytes:
    return digest[:-1] + bytes([digest[-1] ^ 0x01])
