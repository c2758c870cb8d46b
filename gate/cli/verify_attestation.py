"""``gate verify-attestation FILE_OR_sha256:DIGEST --bundle F``: ``gh attestation verify``, offline.

Flags shared with ``gh attestation verify`` keep its meaning: ``--bundle``,
``--owner`` | ``--repo`` (one is required unless ``--key`` is given),
``--signer-workflow`` (a regular expression prefix over the signing
workflow, ``https://github.com/`` implied), ``--signer-repo``,
``--cert-identity`` / ``--cert-identity-regex``, ``--cert-oidc-issuer``
(default GitHub Actions), ``--deny-self-hosted-runners``, ``--predicate-type``
(default SLSA provenance v1), ``--digest-alg`` (sha256 | sha512),
``--source-ref``, ``--source-digest``, ``--signer-digest``,
``--custom-trusted-root`` (alias ``--trusted-root``; default: the public-good
root in ``sigstore``, offline), ``--format json``.

Beyond gh: for SLSA provenance the predicate is cross-checked against the
certificate (``certificate-predicate-mismatch``), and ``--key PUB`` verifies
key-signed attestations (the gate's own VSAs). Exit 0 verified, 1 not, 2 usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

from gate.cli.artifact import artifact_digest
from gate.errors import UsageError, VerificationError
from gate.evidence.attestations import (
    Material,
    PolicySigner,
    VerifiedEnvelope,
    read_material_file,
    verify_envelope,
)
from gate.evidence.cosign import load_policy_key
from gate.evidence.identity import CertificateIdentity
from gate.evidence.slsa import check_certificate, parse_provenance
from gate.evidence.statement import (
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    AttestationError,
    Statement,
    verify_statement,
)
from gate.policy.model import KeylessIdentity
from gate.sources.trustroot import load_trust_root

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify-attestation",
        help="verify a GitHub artifact attestation (gh attestation verify, offline)",
        description="Verify an attestation bundle for FILE or sha256:DIGEST.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", metavar="FILE_OR_DIGEST", help="a file, or sha256:<hex>")
    p.add_argument(
        "-b", "--bundle", required=True, help="attestation bundle(s): JSON or JSON lines"
    )
    who = p.add_mutually_exclusive_group()
    who.add_argument("-o", "--owner", help="GitHub organization or user that built the artifact")
    who.add_argument("-R", "--repo", help="repository (owner/name) that built the artifact")
    p.add_argument(
        "--signer-workflow", help="workflow that signed (regexp; https://github.com/ implied)"
    )
    p.add_argument("--signer-repo", help="repository (owner/name) of the signing workflow")
    p.add_argument("--cert-identity", help="exact certificate SAN")
    p.add_argument("-i", "--cert-identity-regex", help="certificate SAN regular expression")
    p.add_argument("--cert-oidc-issuer", default=GITHUB_ISSUER, help="OIDC issuer (exact)")
    p.add_argument("--deny-self-hosted-runners", action="store_true")
    p.add_argument("--predicate-type", default=SLSA_PROVENANCE_V1)
    p.add_argument("-d", "--digest-alg", choices=("sha256", "sha512"), default="sha256")
    p.add_argument("--source-ref", help="expected source ref (Fulcio .14)")
    p.add_argument("--source-digest", help="expected source commit (Fulcio .13)")
    p.add_argument("--signer-digest", help="expected signing workflow commit (Fulcio .10)")
    p.add_argument(
        "--custom-trusted-root", "--trusted-root", dest="trusted_root", help="trusted_root.json"
    )
    p.add_argument("--key", help="PEM public key (key-signed attestations, e.g. the gate's VSA)")
    p.add_argument("--format", choices=("text", "json"), default="text")


def _github_uri(value: str) -> str:
    return value if "://" in value else f"https://github.com/{value.strip('/')}"


def _identity(args: argparse.Namespace) -> KeylessIdentity:
    if args.cert_identity is not None and args.cert_identity_regex is not None:
        raise UsageError("give at most one of --cert-identity and --cert-identity-regex")
    if args.cert_identity is not None:
        regexp = re.escape(args.cert_identity)
    elif args.cert_identity_regex is not None:
        regexp = args.cert_identity_regex
    elif args.signer_workflow is not None:
        # gh: a regular expression, prefixed with the GitHub host when it has none.
        sw = args.signer_workflow
        regexp = (sw if sw.startswith("https://") else "https://github\\.com/" + sw) + ".*"
    elif args.signer_repo is not None:
        regexp = re.escape(_github_uri(args.signer_repo)) + "/.*"
    elif args.repo is not None:
        regexp = re.escape(_github_uri(args.repo)) + "/.*"
    else:
        regexp = re.escape(_github_uri(args.owner)) + "/.*"
    return KeylessIdentity.model_validate(
        {"issuer": args.cert_oidc_issuer, "subjectRegExp": regexp}
    )


def _check_claims(args: argparse.Namespace, ident: CertificateIdentity) -> None:
    checks = [
        ("sourceRepositoryURI", _github_uri(args.repo) if args.repo else None),
        ("sourceRepositoryOwnerURI", _github_uri(args.owner) if args.owner else None),
        ("sourceRepositoryRef", args.source_ref),
        ("sourceRepositoryDigest", args.source_digest),
        ("buildSignerDigest", args.signer_digest),
        ("runnerEnvironment", "github-hosted" if args.deny_self_hosted_runners else None),
    ]
    for claim, want in checks:
        if want is not None and ident.claims.get(claim) != want:
            raise VerificationError(
                f"the signing certificate's {claim} is not what was asked for",
                reason="identity-mismatch",
                found=repr(ident.claims.get(claim)),
                expected=repr(want),
            )


def verify(args: argparse.Namespace) -> tuple[Statement, VerifiedEnvelope]:
    digest = artifact_digest(args.artifact, args.digest_alg, accept=("sha256", "sha512"))
    try:
        data = Path(args.bundle).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the bundle {args.bundle}: {e.strerror or e}") from e
    if args.key is not None:
        try:
            signer = PolicySigner("key", public_key=load_policy_key(Path(args.key).read_text()))
        except OSError as e:
            raise UsageError(f"cannot read the key {args.key}: {e.strerror or e}") from e
    else:
        if args.owner is None and args.repo is None:
            raise UsageError("give --owner or --repo (or --key for a key-signed attestation)")
        signer = PolicySigner("github", keyless=_identity(args))
    root = load_trust_root(args.trusted_root)
    now = dt.datetime.now(dt.UTC)
    materials: list[Material] = read_material_file(data, args.bundle)
    failures: list[VerificationError] = []
    for material in materials:
        try:
            env = verify_envelope(material, signer, lambda: root, now)
            if env.identity is not None:
                _check_claims(args, env.identity)
            statement = verify_statement(env.payload_type, env.payload, digest, args.predicate_type)
            if env.identity is not None and statement.predicate_type in (
                SLSA_PROVENANCE_V1,
                SLSA_PROVENANCE_V02,
            ):
                check_certificate(parse_provenance(statement), env.identity)
            return statement, env
        except VerificationError as e:
            failures.append(e)
    if not failures:
        raise AttestationError("the bundle file holds no attestation", reason="attestation-missing")
    raise failures[0] if len(failures) == 1 else _best(failures)


def _best(failures: list[VerificationError]) -> VerificationError:
    # A failure after the signature held (content) says more than a signature failure.
    content = [f for f in failures if isinstance(f, AttestationError)]
    return content[0] if content else failures[0]


def run(args: argparse.Namespace) -> int:
    try:
        statement, env = verify(args)
    except VerificationError as e:
        print(f"gate verify-attestation: FAIL ({e.reason})\n{e.diagnostics()}", file=sys.stderr)
        return e.exit_code
    if args.format == "json":
        out = {
            "verificationResult": {
                "statement": json.loads(statement.payload),
                "signer": env.signer_id,
                "certificate": dict(env.identity.claims) if env.identity else None,
            }
        }
        print(json.dumps([out], indent=2))
    print(
        f"gate verify-attestation: OK: {args.artifact} ({statement.predicate_type}) "
        f"signed by {env.signer_id}",
        file=sys.stderr,
    )
    return 0
