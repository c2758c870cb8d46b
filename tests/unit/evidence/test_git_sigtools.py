"""The gpg / ssh-keygen seam, with the real tools: decisions from exit codes and status lines."""

from __future__ import annotations

import datetime as dt

import pytest

from gate.errors import SignatureError
from gate.evidence.sigtools import (
    KeyExpiredError,
    PgpKeyring,
    SshTrustedKey,
    SshVerifier,
    UntrustedSignerError,
    parse_sshsig,
)
from testkit.pgp import PgpKey, PgpKeyFactory
from testkit.sshkeys import SshKey, SshKeyFactory

NOW = dt.datetime.now(dt.UTC)
DATA = b"tree abc\n\nrelease\n"


def _ssh(key: SshKey, **kw: dt.datetime) -> SshVerifier:
    return SshVerifier([SshTrustedKey("release", key.public_line, **kw)])


def test_ssh_good_signature(ssh_key: SshKey) -> None:
    got = _ssh(ssh_key).verify(DATA, ssh_key.sign(DATA), NOW)
    assert got.key_names == {"release"} and got.fingerprint == ssh_key.fingerprint


@pytest.mark.parametrize("algo", ["ecdsa", "rsa"])
def test_ssh_other_algorithms(ssh_keys: SshKeyFactory, algo: str) -> None:
    key = ssh_keys("algo", algo)  # type: ignore[arg-type]
    assert _ssh(key).verify(DATA, key.sign(DATA), NOW).fingerprint == key.fingerprint


def test_ssh_modified_payload(ssh_key: SshKey) -> None:
    with pytest.raises(SignatureError) as e:
        _ssh(ssh_key).verify(DATA + b"x", ssh_key.sign(DATA), NOW)
    assert e.value.reason == "bad-signature"


def test_ssh_other_namespace_is_refused(ssh_key: SshKey) -> None:
    # A signature made for files (`ssh-keygen -Y sign -n file`) must not vouch for git.
    with pytest.raises(SignatureError) as e:
        _ssh(ssh_key).verify(DATA, ssh_key.sign(DATA, namespace="file"), NOW)
    assert "namespace" in e.value.message


def test_ssh_untrusted_key_names_both_fingerprints(
    ssh_key: SshKey, ssh_keys: SshKeyFactory
) -> None:
    other = ssh_keys("other")
    with pytest.raises(UntrustedSignerError) as e:
        _ssh(ssh_key).verify(DATA, other.sign(DATA), NOW)
    assert e.value.found == other.fingerprint
    assert ssh_key.fingerprint in (e.value.expected or "")


def test_ssh_expiry_is_judged_at_the_gate_clock(ssh_key: SshKey) -> None:
    verifier = _ssh(ssh_key, valid_before=NOW - dt.timedelta(days=1))
    with pytest.raises(KeyExpiredError):
        verifier.verify(DATA, ssh_key.sign(DATA), NOW)
    # The same key was valid a week ago: the clock, not the signature, decides.
    verifier.verify(DATA, ssh_key.sign(DATA), NOW - dt.timedelta(days=7))
    with pytest.raises(KeyExpiredError):
        _ssh(ssh_key, valid_after=NOW + dt.timedelta(days=1)).verify(DATA, ssh_key.sign(DATA), NOW)


@pytest.mark.parametrize(
    "armored",
    [
        b"garbage",
        b"-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----\n",
        b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n",
    ],
)
def test_sshsig_garbage(armored: bytes) -> None:
    with pytest.raises(SignatureError):
        parse_sshsig(armored)


def test_pgp_good_bad_untrusted(pgp_key: PgpKey, pgp_keys: PgpKeyFactory) -> None:
    other = pgp_keys("Other Signer")
    with PgpKeyring({"ops": pgp_key.public_armored().decode()}) as ring:
        good = ring.verify(DATA, pgp_key.sign_detached(DATA))
        assert good.primary_fingerprint == pgp_key.fingerprint and good.key_names == {"ops"}
        with pytest.raises(SignatureError) as bad:
            ring.verify(DATA + b"x", pgp_key.sign_detached(DATA))
        assert bad.value.reason == "bad-signature"
        with pytest.raises(UntrustedSignerError) as untrusted:
            ring.verify(DATA, other.sign_detached(DATA))
        assert pgp_key.fingerprint in (untrusted.value.expected or "")
        with pytest.raises(SignatureError):
            ring.verify(
                DATA, b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"
            )
        home = ring._home
    assert home is not None and not home.exists()  # nothing left behind


def test_pgp_expired_and_revoked(pgp_keys: PgpKeyFactory) -> None:
    old = pgp_keys("Old Signer", expired=True)
    gone = pgp_keys("Gone Signer", revoked=True)
    keys = {"old": old.public_armored().decode(), "gone": gone.public_armored().decode()}
    with PgpKeyring(keys) as ring:
        with pytest.raises(KeyExpiredError):
            ring.verify(DATA, old.sign_detached(DATA))
        with pytest.raises(SignatureError.__mro__[1]) as e:  # VerificationError
            ring.verify(DATA, gone.sign_detached(DATA))
        assert e.value.reason == "key-revoked"
