"""``gate verify-blob FILE_OR_sha256:DIGEST --bundle F``: one Sigstore bundle, one artifact.

Compatible with the sigstore-conformance client protocol (``verify-bundle``):
``--certificate-identity I --certificate-oidc-issuer U`` (keyless, identity
compared exactly) or ``--key PUB`` (a public-key bundle), optional
``--trusted-root F`` (default: the public-good root shipped in ``sigstore``,
offline). Exit 0 when verified, 1 when not, 2 on usage errors.

For a DSSE bundle the artifact is the statement's subject: its SHA-256 must
be one of the subject digests (any predicate type).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

from gate.cli.artifact import given_digest, read_artifact
from gate.errors import UsageError, VerificationError
from gate.evidence.attestations import Material, PolicySigner, verify_envelope
from gate.evidence.bundle import (
    Artifact,
    VerifiedBundle,
    check_subject,
    verify_key_bundle,
    verify_keyless_bundle,
)
from gate.evidence.cosign import load_policy_key
from gate.policy.model import KeylessIdentity
from gate.sources.trustroot import load_trust_root


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify-blob",
        help="verify a Sigstore bundle for a file or a sha256 digest",
        description="Verify a Sigstore bundle (v0.1-v0.3) for FILE or sha256:DIGEST.",
    )
    p.add_argument("artifact", metavar="FILE_OR_DIGEST", help="a file, or sha256:<hex>")
    p.add_argument("--bundle", required=True, help="the Sigstore bundle (JSON)")
    p.add_argument("--certificate-identity", help="expected signer identity (exact)")
    p.add_argument("--certificate-identity-regexp", help="expected identity (anchored regexp)")
    p.add_argument("--certificate-oidc-issuer", help="expected OIDC issuer (exact)")
    p.add_argument("--key", help="PEM public key (public-key bundles)")
    p.add_argument("--trusted-root", help="Sigstore trusted_root.json (default: public good)")
    p.set_defaults(func=run)


def _artifact(text: str) -> Artifact:
    given = given_digest(text)
    if given is not None:
        return Artifact(bytes.fromhex(given[1]))
    return Artifact.of(read_artifact(text))


def _identity(args: argparse.Namespace) -> KeylessIdentity:
    if args.certificate_oidc_issuer is None:
        raise UsageError("--certificate-oidc-issuer is required with a certificate identity")
    if (args.certificate_identity is None) == (args.certificate_identity_regexp is None):
        raise UsageError(
            "give one of --certificate-identity or --certificate-identity-regexp (or --key)"
        )
    regexp = args.certificate_identity_regexp or re.escape(args.certificate_identity)
    return KeylessIdentity.model_validate(
        {"issuer": args.certificate_oidc_issuer, "subjectRegExp": regexp}
    )


def _own_path_needed(data: bytes) -> bool:
    """DSSE bundles sigstore-python 4.5.1 refuses (an ``intoto`` 0.0.2 log entry):
    the attestation verifier's own path checks them instead of failing them."""
    try:
        doc = json.loads(data)
        entries = doc["verificationMaterial"].get("tlogEntries") or []
        kinds = {(e["kindVersion"]["kind"], e["kindVersion"]["version"]) for e in entries}
    except (ValueError, KeyError, TypeError, AttributeError):
        return False  # malformed: the normal path reports it
    return "dsseEnvelope" in doc and ("intoto", "0.0.2") in kinds


def verify(args: argparse.Namespace) -> VerifiedBundle | str:
    artifact = _artifact(args.artifact)
    try:
        data = Path(args.bundle).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the bundle {args.bundle}: {e.strerror or e}") from e
    root = load_trust_root(args.trusted_root)
    if args.key is not None:
        try:
            pem = Path(args.key).read_text()
        except OSError as e:
            raise UsageError(f"cannot read the key {args.key}: {e.strerror or e}") from e
        result = verify_key_bundle(data, load_policy_key(pem), artifact, root)
    elif _own_path_needed(data):
        signer = PolicySigner("cli", keyless=_identity(args))
        now = dt.datetime.now(dt.UTC)
        env = verify_envelope(Material("bundle", args.bundle, data), signer, lambda: root, now)
        check_subject(env.payload_type, env.payload, artifact.sha256)
        return env.signer_id
    else:
        result = verify_keyless_bundle(data, root, _identity(args), artifact)
    if result.content == "dsse-envelope":
        check_subject(result.payload_type, result.payload, artifact.sha256)
    return result


def run(args: argparse.Namespace) -> int:
    if args.key is not None and (args.certificate_identity or args.certificate_identity_regexp):
        raise UsageError("give either --key or a certificate identity, not both")
    try:
        result = verify(args)
    except VerificationError as e:
        print(f"gate verify-blob: FAIL ({e.reason})\n{e.diagnostics()}", file=sys.stderr)
        return e.exit_code
    who = result if isinstance(result, str) else result.signer_id
    print(f"gate verify-blob: OK: {args.artifact} signed by {who}", file=sys.stderr)
    return 0
