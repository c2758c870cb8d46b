"""``gate generate``: the Argo CD Config Management Plugin entry point.

Contract (DESIGN): runs in the app's source directory; policy from
``$GATE_POLICY`` (a mounted ConfigMap, never the repository); on allow the
pinned manifests go to stdout and nothing else does; on deny stdout stays
empty, a short reason goes to stderr (Argo CD shows it) and the exit code is
non-zero, which blocks the sync. ``$GATE_VSA`` names a file for the signed
verification summary of the decision (allow and deny; ``spec.output.vsa``).
``$ARGOCD_ENV_GATE_ATTESTATIONS``: comma-separated attestation files, relative
to the app directory (inside the checkout).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gate.cli.output import prepare_vsa, write_atomic, write_vsa
from gate.engine import Engine, GateRequest, SourceInfo, default_verifiers
from gate.errors import UsageError
from gate.policy import load_policy
from gate.sources.git import find_checkout_root

DEFAULT_POLICY = "/etc/gate/policy.yaml"
# Argo CD's default is about 60 s for the whole generate call; keep renders inside it.
RENDER_TIMEOUT_S = 45.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "generate", help="Argo CD CMP: verify the app source and print pinned manifests"
    )
    p.add_argument("path", nargs="?", default=".", help="app source directory (default: .)")
    p.add_argument("--report", help="also write the JSON report here (default: $GATE_REPORT)")
    p.set_defaults(func=run)


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(v.strip() for v in value.replace("\n", ",").split(",") if v.strip())


def attestation_files(
    source_dir: Path, value: str | None, app_path: str | None
) -> tuple[Path, ...]:
    """``$ARGOCD_ENV_GATE_ATTESTATIONS``: paths relative to the app directory.

    These files usually live in the repository being verified, i.e. the party
    under review supplies them. That is safe: they are only extra candidates,
    and every envelope is verified against the POLICY's keys and must name the
    image's digest in its signed statement; being in the repository earns
    nothing. They must stay inside the checkout (after symlinks): the sidecar's
    own files are not the app author's to name.
    """
    names = _list(value)
    if not names:
        return ()
    root = find_checkout_root(source_dir, app_path) or source_dir.resolve()
    out: list[Path] = []
    for name in names:
        path = source_dir / name
        real = path.resolve()
        if Path(name).is_absolute() or (real != root and root not in real.parents):
            raise UsageError(
                f"ARGOCD_ENV_GATE_ATTESTATIONS: {name} is outside the checkout",
                expected=f"a path relative to the app directory, inside {root}",
            )
        out.append(path)
    return tuple(out)


def run(args: argparse.Namespace) -> int:
    policy = load_policy(_env("GATE_POLICY") or DEFAULT_POLICY)
    vsa_file = _env("GATE_VSA")
    vsa_signer = prepare_vsa(vsa_file, policy, flag="$GATE_VSA")  # before any verification
    source_dir = Path(args.path)
    values = tuple(source_dir / v for v in _list(_env("ARGOCD_ENV_GATE_VALUES")))
    attestations = attestation_files(
        source_dir, _env("ARGOCD_ENV_GATE_ATTESTATIONS"), _env("ARGOCD_APP_SOURCE_PATH")
    )
    request = GateRequest(
        source=SourceInfo(
            path=source_dir,
            revision=_env("ARGOCD_APP_REVISION") or "HEAD",
            repo=_env("ARGOCD_APP_SOURCE_REPO_URL"),
            target_revision=_env("ARGOCD_APP_SOURCE_TARGET_REVISION"),
            app_name=_env("ARGOCD_APP_NAME"),
            app_path=_env("ARGOCD_APP_SOURCE_PATH"),
        ),
        values_files=values,
        kube_version=_env("KUBE_VERSION"),
        api_versions=_list(_env("KUBE_API_VERSIONS")),
        render_timeout_s=RENDER_TIMEOUT_S,
        attestation_files=attestations,
    )
    result = Engine(policy, default_verifiers()).run(request)
    write_vsa(result, policy, vsa_signer, vsa_file)
    report_file = args.report or _env("GATE_REPORT")
    if report_file:
        write_atomic(report_file, result.report.dumps())
    if result.manifests is not None:
        sys.stdout.write(result.manifests)
        sys.stdout.flush()
        return 0
    # Argo CD shows stderr in the UI: lead with the reasons, keep it short.
    report = result.report
    app = request.source.app_name or str(source_dir)
    sys.stderr.write(
        f"gitops-gate denied {app} ({report.decision}, policy {report.policy_name}):\n"
    )
    for f in report.failures[:20]:
        first = f.detail.splitlines()[0] if f.detail else ""
        sys.stderr.write(
            f"- {f.check} {f.subject}: {f.reason}" + (f": {first}" if first else "") + "\n"
        )
    if len(report.failures) > 20:
        sys.stderr.write(f"- … and {len(report.failures) - 20} more (see the JSON report)\n")
    return report.exit_code
