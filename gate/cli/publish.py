"""``gate publish [PATH] --to oci://HOST/REPO:TAG``: verify, then publish for Flux.

Verifies the source exactly as ``gate verify`` does (same engine, same
request), and ONLY on allow pushes the pinned manifests as a Flux OCI artifact
(:mod:`gate.flux`) signed with the cosign key ``spec.output.publish.key``
(password ``$GATE_PUBLISH_KEY_PASSWORD``), so that an ``OCIRepository`` with
``verify: {provider: cosign}`` applies only what the gate verified.

- The key is opened BEFORE any verification: no key configured, an unset
  password variable, an unreadable key or a wrong password is exit 2 and
  nothing is verified or pushed.
- Deny (1), could not decide (3), internal error (4): nothing is pushed, the
  exit code is ``gate verify``'s.
- A push that fails after an allow is recorded in the report as a ``publish``
  failure (registry unreachable: 3; the registry stored other bytes: 1) and
  never reported as published.
- stdout: ``HOST/REPO:TAG@sha256:…`` on success (text), or the JSON report
  (``--format json``, with a passing ``publish`` finding naming the digest).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.cli.output import emit
from gate.engine import Engine, Findings, GateRequest, SourceInfo, default_verifiers
from gate.errors import GateError, UsageError
from gate.flux import flux_artifact, flux_revision, strip_credentials
from gate.policy import load_policy
from gate.policy.loader import LoadedPolicy
from gate.reference import ReferenceError, parse_reference
from gate.signing import Signer
from gate.signing.keyfile import open_policy_key
from gate.sources.publish import Deadline, Published, PushClient, publish_signed

PASSWORD_ENV = "GATE_PUBLISH_KEY_PASSWORD"  # noqa: S105 - the variable's name, not a password
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Target:
    """``oci://HOST/REPO:TAG``, split."""

    repo_name: str  # host/path, as the registry clients take it
    tag: str

    def __str__(self) -> str:
        return f"{self.repo_name}:{self.tag}"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "publish",
        help="verify a source and publish its pinned manifests as a signed Flux OCI artifact",
        description="Verify like 'gate verify'; only on allow, push the pinned manifests as a "
        "Flux OCI artifact signed with spec.output.publish.key (cosign legacy signature).",
    )
    p.add_argument("path", nargs="?", default=".", help="source directory (default: .)")
    p.add_argument(
        "--policy", required=True, help="GatePolicy file (trusted; never from the source)"
    )
    p.add_argument(
        "--to", required=True, metavar="oci://HOST/REPO:TAG", help="where to publish (a tag)"
    )
    p.add_argument("--revision", default="HEAD", help="Git revision to verify (default: HEAD)")
    p.add_argument(
        "--source",
        metavar="URL",
        help="the source repository URL (annotation org.opencontainers.image.source; "
        "default: the checkout's remote.origin.url)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text", dest="fmt")
    p.add_argument("--report", help="write the JSON report to this file")
    p.add_argument("--values", action="append", default=[], help="Helm values file (repeatable)")
    p.add_argument(
        "--attestations",
        action="append",
        default=[],
        metavar="FILE",
        help="attestation file, as for 'gate verify' (repeatable)",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="accepted for compatibility; the gate is always offline in this sense: it "
        "reaches only the registries and chart repositories the source names, never a "
        "Sigstore/TUF service (trust roots come from files)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"deadline of the push in seconds (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also list passing checks")
    p.set_defaults(func=run)


def parse_target(text: str) -> Target:
    """``oci://HOST/REPO:TAG`` (host explicit, a tag, no digest) or a usage error."""
    expected = "oci://HOST/REPO:TAG, e.g. oci://registry.example.com/deploy/shop:production"
    if not text.startswith("oci://"):
        raise UsageError(f"--to {text!r} is not an oci:// URL", expected=expected)
    rest = text.removeprefix("oci://")
    host = rest.partition("/")[0]
    if "." not in host and ":" not in host and host != "localhost":
        raise UsageError(f"--to {text!r} names no registry host", expected=expected)
    try:
        ref = parse_reference(rest, default_tag=False)
    except ReferenceError as e:
        raise UsageError(f"--to {text!r}: {e}", expected=expected) from None
    if ref.digest is not None or ref.tag is None:
        raise UsageError(
            f"--to {text!r} must name a tag (Flux follows the tag; the digest is the result)",
            expected=expected,
        )
    return Target(ref.name, ref.tag)


def load_publish_signer(policy: LoadedPolicy, environ: Mapping[str, str] | None = None) -> Signer:
    """Open ``spec.output.publish.key`` with ``$GATE_PUBLISH_KEY_PASSWORD``; exit 2 otherwise."""
    env = os.environ if environ is None else environ
    cfg = policy.policy.spec.output.publish
    if cfg is None:
        raise UsageError(
            "gate publish signs what it publishes, but the policy configures no key",
            expected="spec.output.publish.key: a cosign key file (cosign generate-key-pair)",
            hint="set spec.output.publish.key; Flux's OCIRepository verifies with its public key",
        )
    signer, _ = open_policy_key(
        policy,
        cfg.key,
        password_env=PASSWORD_ENV,
        environ=env,
        purpose="publish signing",
        field="spec.output.publish.key",
    )
    return signer


def describe_revision(path: Path, revision: str) -> tuple[str | None, str | None]:
    """(``<tag or branch>@sha1:<commit>`` or None, remote.origin.url or None) of the checkout.

    Informational (annotations): what the gate VERIFIED is in the report. A
    source without ``.git`` gives the revision as passed (unless ``HEAD``).
    """
    from gate.sources.git import GitCheckout, find_checkout_root

    plain = None if revision == "HEAD" else revision
    if find_checkout_root(path) is None:
        return plain, None
    try:
        checkout = GitCheckout.open(path)
        commit = checkout.resolve_commit(revision)
        origin = checkout.run("config", "--get", "remote.origin.url", check=False)
        name: str | None = None
        if revision == "HEAD":
            branch = checkout.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
            name = branch.decode("utf-8", "replace").strip() or None
        elif commit is None or not revision.startswith(commit[: len(revision)]):
            name = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
    except GateError:
        return plain, None
    url = origin.decode("utf-8", "replace").strip() or None
    if commit is None:
        return plain, url
    return flux_revision(name, commit, object_format=checkout.fmt), url


async def _push(
    policy: LoadedPolicy,
    target: Target,
    manifests: str,
    signer: Signer,
    *,
    source: str | None,
    revision: str | None,
    timeout_s: float,
) -> Published:
    artifact = flux_artifact(
        manifests, source=source, revision=revision, policy_digest=policy.digest
    )
    registries = policy.policy.spec.registries
    async with PushClient(registries, deadline=Deadline(timeout_s)) as client:
        return await publish_signed(client, target.repo_name, target.tag, artifact, signer)


def run(args: argparse.Namespace) -> int:
    target = parse_target(args.to)
    path = Path(args.path)
    if not path.is_dir():
        raise UsageError(f"source path {path} is not a directory")
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    attestation_files = tuple(Path(a) for a in args.attestations)
    for a in attestation_files:
        if not a.is_file():
            raise UsageError(f"--attestations {a}: no such file")
    policy = load_policy(args.policy)
    signer = load_publish_signer(policy)  # before any verification work
    revision_annotation, origin = describe_revision(path, args.revision)
    given: str | None = args.source or origin
    source = (strip_credentials(given) or None) if given else None
    request = GateRequest(
        source=SourceInfo(path=path, revision=args.revision, repo=source),
        values_files=tuple(Path(v) for v in args.values),
        offline=args.offline,
        attestation_files=attestation_files,
    )
    result = Engine(policy, default_verifiers()).run(request)
    published: Published | None = None
    if result.manifests is not None and result.report.exit_code == 0:  # allow, and only allow
        findings = Findings(result.report)
        try:
            published = asyncio.run(
                _push(
                    policy,
                    target,
                    result.manifests,
                    signer,
                    source=source,
                    revision=revision_annotation,
                    timeout_s=args.timeout,
                )
            )
        except Exception as exc:  # recorded with its severity; never "published"
            findings.error("publish", str(target), exc)
        else:
            findings.passed(
                "publish",
                str(target),
                "published",
                f"{published.repo_name}@{published.digest}, signature "
                f"{published.signature_tag}" + ("" if published.signed_now else " (already there)"),
            )
    code = emit(result, fmt=args.fmt, report_file=args.report, manifests_file=None,
                verbose=args.verbose)  # fmt: skip
    if code == 0 and published is not None:
        if args.fmt == "text":
            print(f"{target}@{published.digest}")
        print(f"gate: published {target}@{published.digest}", file=sys.stderr)
    return code
