"""Strict decoding of the base64 fields of signed material."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any


def b64_field(value: Any, what: str, error: Callable[[str], Exception]) -> bytes:
    """Decode ``value`` as strict base64 (no stray characters), or raise ``error(message)``.

    Lenient decoding would let two different texts stand for the same bytes, and a
    non-string (a number, a list) must never be coerced into something decodable.
    """
    if not isinstance(value, str):
        raise error(f"the {what} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise error(f"the {what} is not base64") from e
