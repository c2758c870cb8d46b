"""``gate verify-provenance ARTIFACT --provenance-path F --source-uri U``: slsa-verifier, offline.

Flag-compatible with ``slsa-verifier verify-artifact``: ``--provenance-path``
(alias ``--provenance``), ``--source-uri`` (required), ``--builder-id``,
``--source-branch`` | ``--source-tag`` | ``--source-versioned-tag``,
``--print-provenance``. Extras: ``--trusted-root`` (default: the public-good
root shipped in ``sigstore``, offline) and ``--build-type`` (repeatable).

ARTIFACT is a file or ``sha256:<hex>`` (several may be given, as with
slsa-verifier; each must be a subject). The provenance file may be a Sigstore
bundle, or ``.intoto.jsonl`` lines of bundles; every line is tried and one
that verifies suffices.

Without ``--builder-id`` the signer must be one of slsa-github-generator's
trusted builders at a release tag ``vX.Y.Z`` (slsa-verifier's default); with
it, the certificate's workflow must match it (``@vX.Y.Z`` ≡
``@refs/tags/vX.Y.Z``; without a version only the name is compared). Exit 0
PASSED, 1 FAILED (with the reason code), 2 usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from gate.cli.artifact import artifact_digest
from gate.errors import UsageError, VerificationError
from gate.evidence.attestations import PolicySigner, read_material_file, verify_envelope
from gate.evidence.slsa import TRUSTED_GITHUB_BUILDERS, Provenance, verify_provenance
from gate.evidence.statement import (
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    AttestationError,
    Statement,
    parse_statement,
    validate_predicate,
)
from gate.evidence.statement import check_subject as check_statement_subject
from gate.policy.model import KeylessIdentity, SlsaRequirements
from gate.sources.trustroot import load_trust_root

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
#: When no line verifies, the most specific failure explains it best.
_RANK = (
    "untrusted-builder",
    "builder-mismatch",
    "source-mismatch",
    "invalid-ref",
    "branch-mismatch",
    "tag-mismatch",
    "versioned-tag-mismatch",
    "build-type-mismatch",
    "certificate-predicate-mismatch",
    "subject-mismatch",
    "predicate-type-mismatch",
    "malformed-statement",
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify-provenance",
        help="verify SLSA provenance for artifacts (slsa-verifier verify-artifact, offline)",
        description="Verify SLSA provenance (GitHub builders) for FILE or sha256:DIGEST.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="a file, or sha256:<hex>")
    p.add_argument(
        "--provenance-path",
        "--provenance",
        dest="provenance",
        required=True,
        help="the provenance (Sigstore bundle, or .intoto.jsonl of bundles)",
    )
    p.add_argument("--source-uri", required=True, help="expected source, e.g. github.com/o/r")
    p.add_argument("--builder-id", help="expected builder id (name[@vX.Y.Z|@refs/tags/vX.Y.Z])")
    refs = p.add_mutually_exclusive_group()
    refs.add_argument("--source-branch", help="expected branch the build was from")
    refs.add_argument("--source-tag", help="expected tag the build was from (exact)")
    refs.add_argument(
        "--source-versioned-tag", help="expected semver tag; matches on the parts given"
    )
    p.add_argument("--build-type", action="append", help="allowed buildType (repeatable)")
    p.add_argument("--print-provenance", action="store_true", help="print the statement to stdout")
    p.add_argument("--trusted-root", help="Sigstore trusted_root.json (default: public good)")


def _rank(reason: str) -> int:
    return _RANK.index(reason) if reason in _RANK else len(_RANK)


def verify(args: argparse.Namespace) -> tuple[Statement, Provenance]:
    digests = [artifact_digest(a) for a in args.artifacts]
    try:
        data = Path(args.provenance).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the provenance {args.provenance}: {e.strerror or e}") from e
    root = load_trust_root(args.trusted_root)
    req = SlsaRequirements.model_validate(
        {
            k: v
            for k, v in {
                "builderId": args.builder_id,
                "sourceUri": args.source_uri,
                "sourceBranch": args.source_branch,
                "sourceTag": args.source_tag,
                "sourceVersionedTag": args.source_versioned_tag,
                "buildTypes": args.build_type,
            }.items()
            if v is not None
        }
    )
    # Any GitHub Actions identity may have signed; which workflow is a trusted
    # builder is decided by the SLSA checks (untrusted-builder), as slsa-verifier.
    signer = PolicySigner(
        "builder",
        keyless=KeylessIdentity.model_validate(
            {"issuer": GITHUB_ISSUER, "subjectRegExp": r"https://github\.com/.+"}
        ),
    )
    trusted = TRUSTED_GITHUB_BUILDERS if args.builder_id is None else None
    now = dt.datetime.now(dt.UTC)
    failures: list[VerificationError] = []
    for material in read_material_file(data, args.provenance):
        try:
            env = verify_envelope(material, signer, lambda: root, now)
            statement = parse_statement(env.payload_type, env.payload)
            if statement.predicate_type not in (SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02):
                raise AttestationError(
                    "the statement is not SLSA provenance",
                    reason="predicate-type-mismatch",
                    found=statement.predicate_type,
                )
            validate_predicate(statement)
            prov = verify_provenance(statement, req, env.identity, trusted_builders=trusted)
            for d in digests:
                check_statement_subject(statement, d)
            return statement, prov
        except VerificationError as e:
            failures.append(e)
    if not failures:
        raise AttestationError("the provenance file is empty", reason="attestation-missing")
    raise min(failures, key=lambda e: _rank(e.reason))


def run(args: argparse.Namespace) -> int:
    try:
        statement, prov = verify(args)
    except VerificationError as e:
        print(f"FAILED: SLSA verification failed ({e.reason}): {e.diagnostics()}", file=sys.stderr)
        return e.exit_code
    if args.print_provenance:
        print(json.dumps(json.loads(statement.payload), indent=2))
    commit = prov.source_digest.get("sha1") or prov.source_digest.get("gitCommit") or "?"
    print(
        f'Verified build using builder "{prov.builder_id}" at commit {commit}\n'
        "PASSED: SLSA verification passed",
        file=sys.stderr,
    )
    return 0
