"""The Flux packaging renders, runs `gate publish` with no cluster access, and is consumed
by an OCIRepository that verifies with the publisher's public key."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.cli import main
from gate.cli.publish import parse_target
from gate.policy import load_policy
from gate.signing import load_public_key

ROOT = Path(__file__).resolve().parents[2]
FLUX = ROOT / "plugins" / "flux"


def _env() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (FLUX / "source.env").read_text().splitlines())
    return {k: v for k, v in pairs if k and not k.startswith("#")}


def _render() -> dict[tuple[str, str, str], dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(FLUX)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
        for d in yaml.safe_load_all(out)
    }


def _expand(arg: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Z_]+)\)", lambda m: env[m[1]], arg)


needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl not on PATH (make test adds it)"
)


def test_example_policy_is_valid_and_names_the_mounted_key() -> None:
    assert main(["policy", "check", str(FLUX / "policy.yaml")]) == 0
    publish = load_policy(FLUX / "policy.yaml").policy.spec.output.publish
    assert publish is not None
    assert publish.key == "/etc/gate-key/cosign.key"


def test_shipped_public_key_parses() -> None:
    load_public_key((FLUX / "cosign.pub").read_bytes())


@needs_kubectl
def test_overlay_renders_publisher_and_consumer() -> None:
    docs = _render()
    kinds = {k for k, _, _ in docs}
    # No cluster access: no roles or bindings of any kind.
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    sa = docs[("ServiceAccount", "gitops-gate", "gate-publish")]
    assert sa["automountServiceAccountToken"] is False

    cron = docs[("CronJob", "gitops-gate", "gate-publish")]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "gate-publish"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (clone,) = pod["initContainers"]
    (gate,) = pod["containers"]
    for c in (clone, gate):
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert "git clone" in clone["args"][0]

    env = _env()
    args = [_expand(a, env) for a in gate["args"]]
    assert args[0] == "publish"
    assert f"--to={env['TARGET']}" in args
    assert "--policy=/etc/gate/policy.yaml" in args
    password = next(e for e in gate["env"] if e["name"] == "GATE_PUBLISH_KEY_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "gate-publish-key", "key": "password"}
    mounts = {m["mountPath"]: m["name"] for m in gate["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/gate"]]["configMap"]["name"] == "gate-publish-policy"
    key_volume = volumes[mounts["/etc/gate-key"]]["secret"]
    assert key_volume["secretName"] == "gate-publish-key"
    assert [i["path"] for i in key_volume["items"]] == ["cosign.key"]
    policy = docs[("ConfigMap", "gitops-gate", "gate-publish-policy")]
    assert "publish: {key: /etc/gate-key/cosign.key}" in policy["data"]["policy.yaml"]

    # The consumer follows the tag the publisher writes and verifies with its public key.
    target = parse_target(env["TARGET"])
    repo = docs[("OCIRepository", "flux-system", "shop-verified")]
    assert repo["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert repo["spec"]["url"] == f"oci://{target.repo_name}"
    assert repo["spec"]["ref"] == {"tag": target.tag}
    assert repo["spec"]["verify"] == {
        "provider": "cosign",
        "secretRef": {"name": "gate-publish-pub"},
    }
    assert repo["spec"]["layerSelector"]["mediaType"] == (
        "application/vnd.cncf.flux.content.v1.tar+gzip"
    )
    pub = docs[("Secret", "flux-system", "gate-publish-pub")]
    assert set(pub["data"]) == {"cosign.pub"}  # source-controller reads every *.pub key
    ks = docs[("Kustomization", "flux-system", "shop")]
    assert ks["spec"]["sourceRef"] == {"kind": "OCIRepository", "name": "shop-verified"}


def test_one_shot_job_is_the_cronjob_pod() -> None:
    cron = yaml.safe_load((FLUX / "cronjob.yaml").read_text())
    job = yaml.safe_load((FLUX / "job.yaml").read_text())
    assert job["kind"] == "Job"
    assert job["metadata"]["generateName"] == "gate-publish-"
    assert job["metadata"]["namespace"] == cron["metadata"]["namespace"]
    assert job["spec"] == cron["spec"]["jobTemplate"]["spec"]


def test_clone_script_and_args_publish_from_a_local_repository(
    tmp_path: Path, registry: Any, repo_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the init container's script and the container's args as the pod would."""
    from gate.signing import generate_key_pair

    origin = tmp_path / "origin"
    (origin / "deploy").mkdir(parents=True)
    (origin / "deploy" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n"
    )
    git_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", *argv], cwd=origin, env=git_env, check=True)

    cron = yaml.safe_load((FLUX / "cronjob.yaml").read_text())
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **_env(),
        "GIT_URL": origin.as_uri(),
        "TARGET": f"oci://{registry.host}/{repo_name}:production",
    }
    script = pod["initContainers"][0]["args"][0].replace("/work/", f"{work}/")
    subprocess.run(["/bin/sh", "-c", script], env={**git_env, **env}, check=True, timeout=60)
    assert (work / "src" / "deploy" / "cm.yaml").is_file()

    key = generate_key_pair()
    (tmp_path / "cosign.key").write_bytes(key.private_pem(b"pw"))
    policy = tmp_path / "policy.yaml"
    doc = yaml.safe_load((FLUX / "policy.yaml").read_text())
    doc["spec"] = {
        "images": [{"match": ["docker.io/**"], "exempt": "test"}],
        "registries": [{"host": registry.host, "insecure": True}],
        "output": {"publish": {"key": str(tmp_path / "cosign.key")}},
    }
    policy.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("GATE_PUBLISH_KEY_PASSWORD", "pw")
    args = [
        _expand(a, env).replace("/work/", f"{work}/").replace("/etc/gate/policy.yaml", str(policy))
        for a in pod["containers"][0]["args"]
    ]
    assert main(args) == 0
    from testkit import oci

    annotations = oci.get_manifest(registry, repo_name, "production").json()["annotations"]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=origin, env=git_env, check=True,
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert annotations["org.opencontainers.image.revision"] == f"main@sha1:{commit}"
    assert annotations["org.opencontainers.image.source"] == origin.as_uri()
