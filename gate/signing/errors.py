"""Errors of the signing package.

A key file and its password are operator input (policy ``output.vsa.key``,
``$GATE_VSA_KEY_PASSWORD``), so failing to read them is a usage error (exit 2),
never a verification failure: nothing about the evidence is wrong.
"""

from __future__ import annotations

from gate.errors import UsageError


class KeyFileError(UsageError):
    """The key file is not a key we can read (format, KDF parameters, key type)."""

    reason = "key-unreadable"


class KeyPasswordError(KeyFileError):
    """The key file is well formed but the password does not open it."""

    reason = "key-password"
