"""``gate verify-image REF``: one image's signatures, for release pipelines.

Either ``--policy FILE`` (the first matching ``spec.images`` rule applies, as
in ``gate verify``), or, without a policy, the signer on the command line:
``--key PUB`` or ``--certificate-identity I --certificate-oidc-issuer U``
(identity exact; ``--certificate-identity-regexp`` for an anchored regexp),
with ``--trusted-root`` (default: the public-good root, offline),
``--signature-repository`` and ``--unsafe-plain-http HOST`` (plain HTTP to
that registry, recorded in the report).

On allow prints ``REF@sha256:…`` (the verified digest) on stdout and exits 0;
on deny prints nothing on stdout and exits 1; 3 when the registry could not
be reached; 2 on usage errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from gate.engine import Context, Findings, GateRequest, ImageCheck, SourceInfo
from gate.errors import UsageError
from gate.images import CosignImageVerifier
from gate.policy import LoadedPolicy, image_rule_for, load_policy, parse_policy
from gate.reference import parse_reference
from gate.report import ImageResult, Report


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify-image",
        help="verify one image's cosign / Sigstore signatures",
        description="Verify the signatures of one image reference.",
    )
    p.add_argument("ref", metavar="REF", help="image reference (tag, digest or tag@digest)")
    p.add_argument("--policy", help="GatePolicy file (its first matching spec.images rule)")
    p.add_argument("--key", help="PEM public key (without --policy)")
    p.add_argument("--certificate-identity", help="keyless signer identity (exact)")
    p.add_argument("--certificate-identity-regexp", help="keyless identity (anchored regexp)")
    p.add_argument("--certificate-oidc-issuer", help="keyless OIDC issuer (exact)")
    p.add_argument("--trusted-root", help="Sigstore trusted_root.json (without --policy)")
    p.add_argument("--signature-repository", help="where the signatures are (COSIGN_REPOSITORY)")
    p.add_argument(
        "--unsafe-plain-http",
        action="append",
        default=[],
        metavar="HOST",
        help="talk plain HTTP to this registry host (tests, loopback)",
    )
    p.add_argument("--timeout", type=float, default=45.0, help="overall deadline in seconds")
    p.add_argument("--format", choices=("text", "json"), default="text", dest="fmt")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def _flags_policy(args: argparse.Namespace) -> LoadedPolicy:
    """A one-rule policy equivalent to the command-line signer."""
    keyless = args.certificate_identity or args.certificate_identity_regexp
    if (args.key is None) == (not keyless):
        raise UsageError(
            "give --policy, or exactly one signer: --key PUB, or --certificate-identity "
            "(or --certificate-identity-regexp) with --certificate-oidc-issuer"
        )
    key: dict[str, Any]
    if args.key is not None:
        try:
            key = {"publicKey": Path(args.key).read_text()}
        except OSError as e:
            raise UsageError(f"cannot read the key {args.key}: {e.strerror or e}") from e
    else:
        if not args.certificate_oidc_issuer:
            raise UsageError("--certificate-oidc-issuer is required with a certificate identity")
        regexp = args.certificate_identity_regexp or re.escape(args.certificate_identity)
        key = {"keyless": {"issuer": args.certificate_oidc_issuer, "subjectRegExp": regexp}}
    ref = parse_reference(args.ref)
    rule: dict[str, Any] = {"match": [ref.name], "signatures": {"signers": ["signer"]}}
    if args.signature_repository:
        rule["signatureRepository"] = args.signature_repository
    spec: dict[str, Any] = {"keys": {"signer": key}, "images": [rule]}
    if args.trusted_root:
        spec["trustRoots"] = {"sigstore": str(Path(args.trusted_root).resolve())}
    if args.unsafe_plain_http:
        spec["registries"] = [{"host": h, "insecure": True} for h in args.unsafe_plain_http]
    doc = {
        "apiVersion": "gitops-gate.dev/v1alpha1",
        "kind": "GatePolicy",
        "metadata": {"name": "verify-image-flags"},
        "spec": spec,
    }
    return parse_policy(yaml.safe_dump(doc).encode(), source="<verify-image flags>")


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.policy is not None:
        if args.key or args.certificate_identity or args.certificate_identity_regexp:
            raise UsageError("give either --policy or a signer on the command line, not both")
        if args.unsafe_plain_http or args.trusted_root or args.signature_repository:
            raise UsageError(
                "with --policy, set registries, trustRoots and signatureRepository in it"
            )
        loaded = load_policy(args.policy)
    else:
        loaded = _flags_policy(args)
    ref = parse_reference(args.ref)
    now = dt.datetime.now(dt.UTC)
    report = Report(
        policy_name=loaded.name,
        policy_digest=loaded.digest,
        source_path=str(ref),
        revision=None,
        repo=None,
        verified_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    findings = Findings(report)
    if args.unsafe_plain_http:
        findings.warn("unsafe", ", ".join(args.unsafe_plain_http), "unsafe-plain-http")
    ctx = Context(loaded, GateRequest(SourceInfo(Path("."))), now, findings)
    match = image_rule_for(loaded.policy.spec, ref)
    digest: str | None = None
    if match is None:
        findings.failed("image.policy", str(ref), "no-policy", f"no rule matches {ref.name}")
    elif match[1].exempt is not None:
        findings.exempt("image.policy", str(ref), f"spec.images[{match[0]}]: {match[1].exempt}")
    else:
        verifier = CosignImageVerifier(deadline_s=args.timeout)
        try:
            digest = verifier.verify_images(ctx, [ImageCheck(ref, match[0], match[1])]).get(ref)
        except Exception as exc:  # fail closed
            findings.error("image.signature", str(ref), exc)
            digest = None
        if digest is None and not findings.has_failure("image", str(ref)):
            findings.failed("image.signature", str(ref), "internal-error", "no verdict")
    report.images.append(ImageResult(str(ref), digest))
    report.total_ms = (time.monotonic() - started) * 1000
    if args.fmt == "json":
        sys.stdout.write(report.dumps())
    elif report.exit_code == 0 and digest is not None:
        print(str(ref.with_digest(digest)))
    sys.stderr.write(report.render_text(verbose=args.verbose))
    return report.exit_code
