"""``gate policy check FILE``: validate a policy and say, plainly, what it enforces."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gate.policy import LoadedPolicy, load_policy
from gate.policy.model import SignerSet, Spec


def add_parser(sub: Any) -> None:
    p = sub.add_parser("policy", help="work with policy files")
    psub = p.add_subparsers(dest="policy_verb", metavar="ACTION", parser_class=type(p))
    c = psub.add_parser("check", help="validate a policy file and print what it enforces")
    c.add_argument("file")
    c.set_defaults(func=run)
    p.set_defaults(func=lambda _a: (p.print_help(sys.stderr), 2)[1])


def _signers(s: SignerSet) -> str:
    return f"{s.threshold} of [{', '.join(s.signers)}]"


def describe(loaded: LoadedPolicy) -> str:
    spec: Spec = loaded.policy.spec
    out = [f"policy {loaded.name} ({loaded.digest}) from {loaded.path}: valid"]
    if spec.mode == "audit":
        out.append("mode: AUDIT: failures are reported as warnings and nothing is blocked")
    else:
        out.append("mode: enforce: any failure blocks the manifests")
    out.append("keys:")
    for name, key in sorted(spec.keys.items()):
        extra = ""
        if key.keyless is not None:
            subj = key.keyless.subject or f"/{key.keyless.subject_regexp}/"
            extra = f" issuer={key.keyless.issuer} subject={subj}"
        out.append(f"  {name}: {key.kind}{extra}")
    git = spec.source.git
    if git is None:
        out.append(
            "git: no spec.source.git: the Git revision is NOT checked and .git is not needed"
        )
    else:
        out.append(
            f"git: require {git.require}, signed by {_signers(git)}, release tags {git.tags}"
        )
        rb = git.rollback
        out.append(
            "rollback: no spec.source.git.rollback: NOT checked; an older signed release is "
            "accepted again"
            if rb is None
            else f"rollback: {rb.mode}: "
            + (
                "HEAD must be the last allowed commit or descend from it"
                if rb.mode == "descendant"
                else "the release tag's version must not be lower than the last allowed"
            )
            + f" (per application; state {rb.state}, relative: beside the policy)"
        )
    if not spec.charts:
        out.append("charts: no rules: any Helm chart is denied (no-policy)")
    for i, c in enumerate(spec.charts):
        what = (
            f"exempt ({c.exempt})"
            if c.exempt
            else ", ".join(
                x
                for x in (
                    c.provenance and f"provenance by {_signers(c.provenance)}",
                    c.signatures and f"signatures by {_signers(c.signatures)}",
                )
                if x
            )
        )
        out.append(f"charts[{i}]: {', '.join(c.match)} -> {what}")
    if not spec.images:
        out.append("images: no rules: every image is denied (no-policy)")
    for i, r in enumerate(spec.images):
        if r.exempt:
            out.append(f"images[{i}]: {', '.join(r.match)} -> EXEMPT ({r.exempt})")
            continue
        parts = []
        if r.signatures:
            parts.append(f"signatures by {_signers(r.signatures)}")
        for a in r.attestations:
            parts.append(f"attestation {a.predicate_type} by {_signers(a)}")
        out.append(f"images[{i}]: {', '.join(r.match)} -> {'; '.join(parts)}")
    out.append("images no rule matches: denied (no-policy); the first matching rule wins")
    out.append(
        "image: strings no extractor claims (spec.imageFields): "
        + ("DENIED" if spec.unchecked_image_fields == "deny" else "warned about, not blocked")
    )
    out.append(f"output: pin digests: {'yes' if spec.output.pin_digests else 'NO'}")
    if spec.output.vsa is not None:
        out.append(
            f"output: a signed verification summary (VSA) with key {spec.output.vsa.key} "
            "when --vsa / $GATE_VSA names a file"
        )
    if spec.output.publish is not None:
        out.append(
            f"output: gate publish signs the Flux artifact with key {spec.output.publish.key}"
        )
    for reg in spec.registries:
        if reg.insecure:
            out.append(f"WARNING: registry {reg.host} is reached over plain HTTP (insecure: true)")
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    loaded = load_policy(args.file)
    sys.stdout.write(describe(loaded))
    return 0
