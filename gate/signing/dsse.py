"""DSSE (Dead Simple Signing Envelope) v1: PAE, the envelope, signing.

The signature covers the pre-authentication encoding, never the payload
alone, so a payload cannot be replayed under another payload type::

    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

where LEN is the byte length in ASCII decimal without leading zeros.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from gate.signing.signer import Signer

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


class EnvelopeFormatError(ValueError):
    """The bytes are not a DSSE envelope. Callers map it to their own error family."""


@dataclass(frozen=True)
class Signature:
    sig: bytes
    keyid: str = ""


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...] = field(default=())

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_dict(self) -> dict[str, Any]:
        # Field order as cosign (Go struct order) writes it.
        return {
            "payloadType": self.payload_type,
            "payload": _b64(self.payload),
            "signatures": [{"keyid": s.keyid, "sig": _b64(s.sig)} for s in self.signatures],
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, doc: Any) -> Envelope:
        try:
            if not isinstance(doc, dict):
                raise TypeError("not a JSON object")
            payload_type = doc["payloadType"]
            if not isinstance(payload_type, str):
                raise TypeError("payloadType is not a string")
            sigs = doc.get("signatures") or []
            if not isinstance(sigs, list):
                raise TypeError("signatures is not a list")
            signatures = tuple(
                Signature(sig=_unb64(s["sig"]), keyid=str(s.get("keyid") or "")) for s in sigs
            )
            return cls(_unb64(doc["payload"]), payload_type, signatures)
        except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise EnvelopeFormatError(f"not a DSSE envelope: {exc}") from exc

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise EnvelopeFormatError(f"DSSE envelope is not JSON: {exc}") from exc
        return cls.from_dict(doc)


def sign_envelope(
    payload: bytes,
    payload_type: str,
    signer: Signer,
    *,
    keyid: str = "",
) -> Envelope:
    """Sign ``payload`` in a DSSE envelope; keyid ``""`` as cosign writes it."""
    return Envelope(
        payload, payload_type, (Signature(signer.sign(pae(payload_type, payload)), keyid),)
    )


def add_signature(envelope: Envelope, signer: Signer, *, keyid: str = "") -> Envelope:
    """A copy of ``envelope`` with one more signature (multi-signer envelopes)."""
    sig = Signature(signer.sign(envelope.pae()), keyid)
    return Envelope(envelope.payload, envelope.payload_type, (*envelope.signatures, sig))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any) -> bytes:
    # DSSE allows standard or URL-safe base64; accept both, padded or not.
    if not isinstance(value, str):
        raise TypeError("base64 field is not a string")
    text = value.strip()
    text += "=" * (-len(text) % 4)
    if "-" in text or "_" in text:
        return base64.urlsafe_b64decode(text)
    return base64.b64decode(text, validate=True)


__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "Envelope",
    "EnvelopeFormatError",
    "Signature",
    "add_signature",
    "pae",
    "sign_envelope",
]
