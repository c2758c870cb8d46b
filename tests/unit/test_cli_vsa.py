"""``gate verify --vsa`` / ``gate generate`` with ``$GATE_VSA``: the CLI contract of the VSA.

No registry: the images are exempt (allow) or match no rule (deny).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from gate.cli import main
from gate.signing import KeyPair, generate_key_pair
from tests.unit.helpers import deployment, write_policy, write_source

VSA = "https://slsa.dev/verification_summary/v1"
BUSYBOX = "docker.io/library/busybox:1.36"
PASSWORD = "s3cret"


@pytest.fixture(scope="module")
def pair() -> KeyPair:
    return generate_key_pair()


@pytest.fixture
def setup(tmp_path: Path, pair: KeyPair, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "vsa.key").write_bytes(pair.private_pem(PASSWORD.encode()))
    (tmp_path / "vsa.pub").write_bytes(pair.public_pem())
    spec = {
        "images": [{"match": ["docker.io/library/busybox"], "exempt": "reviewed"}],
        "output": {"vsa": {"key": "vsa.key"}},
    }
    write_policy(tmp_path / "policy.yaml", spec)
    write_source(tmp_path / "ok", deployment("app", BUSYBOX))
    write_source(tmp_path / "bad", deployment("app", "registry.example.com/unknown:1"))
    monkeypatch.setenv("GATE_VSA_KEY_PASSWORD", PASSWORD)
    return tmp_path


def _statement(path: Path) -> dict[str, object]:
    doc = json.loads(path.read_text())
    assert doc["payloadType"] == "application/vnd.in-toto+json"
    stmt: dict[str, object] = json.loads(base64.b64decode(doc["payload"]))
    return stmt


def _verify(t: Path, src: str, *extra: str) -> int:
    return main(
        [
            "verify",
            str(t / src),
            "--policy",
            str(t / "policy.yaml"),
            "--report",
            str(t / "report.json"),
            "--manifests",
            str(t / "out.yaml"),
            "--vsa",
            str(t / "vsa.json"),
            *extra,
        ]
    )


def test_allow_writes_a_vsa_that_verify_attestation_accepts(setup: Path) -> None:
    t = setup
    assert _verify(t, "ok", "--repo", "https://github.com/acme/deploy", "--revision", "v1") == 0
    stmt = _statement(t / "vsa.json")
    report = json.loads((t / "report.json").read_text())
    pred = stmt["predicate"]
    assert isinstance(pred, dict)
    assert pred["verificationResult"] == "PASSED"
    assert pred["timeVerified"] == report["verifiedAt"]
    assert pred["resourceUri"] == "git+https://github.com/acme/deploy@v1"
    assert pred["policy"]["digest"]["sha256"] == report["policy"]["digest"].split(":")[1]
    assert report["vsa"]["path"] == str(t / "vsa.json")
    assert report["vsa"]["verificationResult"] == "PASSED"
    assert report["vsa"]["statementDigest"].startswith("sha256:")
    # The gate's own verify-attestation path, with the manifests file as the subject.
    argv = ["verify-attestation", str(t / "out.yaml"), "--bundle", str(t / "vsa.json")]
    argv += ["--key", str(t / "vsa.pub"), "--predicate-type", VSA]
    assert main(argv) == 0
    # Another key does not verify it.
    (t / "other.pub").write_bytes(generate_key_pair().public_pem())
    assert main([*argv[:-3], str(t / "other.pub"), "--predicate-type", VSA]) == 1


def test_deny_writes_a_failed_vsa(setup: Path) -> None:
    t = setup
    assert _verify(t, "bad") == 1
    assert not (t / "out.yaml").exists()
    pred = _statement(t / "vsa.json")["predicate"]
    assert isinstance(pred, dict)
    assert pred["verificationResult"] == "FAILED"
    assert pred["verifiedLevels"] == ["FAILED"]
    assert pred["resourceUri"] == (t / "bad").resolve().as_uri()
    assert json.loads((t / "report.json").read_text())["vsa"]["verificationResult"] == "FAILED"


@pytest.mark.parametrize("password", [None, "wrong"])
def test_bad_password_is_exit_2_before_verifying(
    setup: Path, monkeypatch: pytest.MonkeyPatch, password: str | None
) -> None:
    t = setup
    assert _verify(t, "ok") == 0  # a previous allow left a VSA and manifests
    (t / "out.yaml").unlink()
    (t / "report.json").unlink()
    if password is None:
        monkeypatch.delenv("GATE_VSA_KEY_PASSWORD")
    else:
        monkeypatch.setenv("GATE_VSA_KEY_PASSWORD", password)
    assert _verify(t, "ok") == 2
    assert not (t / "out.yaml").exists()
    assert not (t / "report.json").exists()  # stopped before any verification work
    assert not (t / "vsa.json").exists()  # the older decision's VSA is not left behind


def test_no_output_vsa_in_policy_is_a_usage_error(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = setup
    write_policy(t / "policy.yaml", {"images": [{"match": ["**"], "exempt": "x"}]})
    assert _verify(t, "ok") == 2
    assert "spec.output.vsa.key" in capsys.readouterr().err
    assert not (t / "vsa.json").exists()


def test_generate_writes_the_vsa_named_by_gate_vsa(
    setup: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    t = setup
    monkeypatch.setenv("GATE_POLICY", str(t / "policy.yaml"))
    monkeypatch.setenv("GATE_VSA", str(t / "gen-vsa.json"))
    monkeypatch.setenv("ARGOCD_APP_SOURCE_REPO_URL", "https://github.com/acme/deploy")
    monkeypatch.setenv("ARGOCD_APP_REVISION", "a" * 40)
    assert main(["generate", str(t / "ok")]) == 0
    manifests = capsys.readouterr().out
    pred = _statement(t / "gen-vsa.json")["predicate"]
    assert isinstance(pred, dict)
    assert pred["resourceUri"] == "git+https://github.com/acme/deploy@" + "a" * 40
    (t / "m.yaml").write_text(manifests)
    argv = ["verify-attestation", str(t / "m.yaml"), "--bundle", str(t / "gen-vsa.json")]
    assert main([*argv, "--key", str(t / "vsa.pub"), "--predicate-type", VSA]) == 0
    monkeypatch.setenv("GATE_VSA_KEY_PASSWORD", "wrong")
    assert main(["generate", str(t / "ok")]) == 2
    assert capsys.readouterr().out == ""
