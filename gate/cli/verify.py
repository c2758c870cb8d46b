"""``gate verify [PATH]``: verify a checkout for a release pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gate.cli.output import emit, prepare_vsa, write_vsa
from gate.engine import Engine, GateRequest, SourceInfo, default_verifiers
from gate.errors import UsageError
from gate.policy import load_policy


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="verify a source directory against a policy")
    p.add_argument("path", nargs="?", default=".", help="source directory (default: .)")
    p.add_argument(
        "--policy", required=True, help="GatePolicy file (trusted; never from the source)"
    )
    p.add_argument("--revision", default="HEAD", help="Git revision to verify (default: HEAD)")
    p.add_argument("--format", choices=("text", "json"), default="text", dest="fmt")
    p.add_argument("--report", help="write the JSON report to this file")
    p.add_argument(
        "--manifests", help="write the pinned manifests here, only on allow ('-' for stdout)"
    )
    p.add_argument(
        "--vsa",
        metavar="FILE",
        help="write this decision's signed SLSA VSA (DSSE) here, on allow and deny "
        "(key: spec.output.vsa.key, password: $GATE_VSA_KEY_PASSWORD)",
    )
    p.add_argument(
        "--repo", help="source repository URL, for the VSA's resourceUri (git+URL@revision)"
    )
    p.add_argument("--values", action="append", default=[], help="Helm values file (repeatable)")
    p.add_argument(
        "--attestations",
        action="append",
        default=[],
        metavar="FILE",
        help="attestation file (Sigstore bundle, DSSE envelope or JSON lines of them; "
        "repeatable): extra candidates for every image, counted only when a policy signer "
        "signed them for that image's digest",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="accepted for compatibility; the gate is always offline in this sense: it "
        "reaches only the registries and chart repositories the source names, never a "
        "Sigstore/TUF service (trust roots come from files)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also list passing checks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.fmt == "json" and args.manifests == "-":
        raise UsageError(
            "--format json and --manifests - both want stdout",
            hint="write the manifests to a file (--manifests out.yaml) or use --report for JSON",
        )
    path = Path(args.path)
    if not path.is_dir():
        raise UsageError(f"source path {path} is not a directory")
    attestation_files = tuple(Path(a) for a in args.attestations)
    for a in attestation_files:
        if not a.is_file():
            raise UsageError(f"--attestations {a}: no such file")
    policy = load_policy(args.policy)
    vsa_signer = prepare_vsa(args.vsa, policy, flag="--vsa")  # before any verification work
    request = GateRequest(
        source=SourceInfo(path=path, revision=args.revision, repo=args.repo),
        values_files=tuple(Path(v) for v in args.values),
        offline=args.offline,
        attestation_files=attestation_files,
    )
    result = Engine(policy, default_verifiers()).run(request)
    write_vsa(result, policy, vsa_signer, args.vsa)
    return emit(
        result,
        fmt=args.fmt,
        report_file=args.report,
        manifests_file=args.manifests,
        verbose=args.verbose,
    )
