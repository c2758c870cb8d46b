"""The gate's own VSA: statement fields, key loading, signature, and the round trip through
a policy rule that requires it (``evaluate_rule`` over a bare DSSE envelope)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gate.errors import UsageError
from gate.evidence.attestation_policy import evaluate_rule
from gate.evidence.attestations import Material
from gate.evidence.statement import VSA_V1, parse_statement, validate_predicate
from gate.policy import LoadedPolicy, load_policy
from gate.policy.model import AttestationRule, Key
from gate.report import EXIT_USAGE, Finding, ImageResult, InputAttestation, Report
from gate.signing import KeyPair, KeyPasswordError, generate_key_pair, pae
from gate.sources.trustroot import TrustRoot
from gate.vsa_emit import (
    VERIFIER_ID,
    VsaSigner,
    build_statement,
    load_vsa_signer,
    resource_uri,
    sign_vsa,
    subjects,
)
from tests.unit.helpers import make_policy, write_policy

ROOT = Path(__file__).resolve().parents[2]
IMG = "registry.example.com/acme/app"
D1 = "sha256:" + "1a" * 32
D2 = "sha256:" + "2b" * 32
REPO = "https://github.com/acme/deploy"
REV = "c0ffee" * 6 + "c0ff"
PASSWORD = b"correct horse"


@pytest.fixture(scope="module")
def pair() -> KeyPair:
    return generate_key_pair()


@pytest.fixture
def key_file(tmp_path: Path, pair: KeyPair) -> Path:
    path = tmp_path / "vsa.key"
    path.write_bytes(pair.private_pem(PASSWORD))
    return path


def _policy(tmp_path: Path, key: str = "vsa.key") -> LoadedPolicy:
    spec = {"images": [{"match": ["**"], "exempt": "x"}], "output": {"vsa": {"key": key}}}
    return load_policy(write_policy(tmp_path / "policy.yaml", spec))


def _signer(tmp_path: Path, key_file: Path) -> VsaSigner:
    return load_vsa_signer(_policy(tmp_path), {"GATE_VSA_KEY_PASSWORD": PASSWORD.decode()})


def _report(policy: LoadedPolicy, *, deny: bool = False, **kw: Any) -> Report:
    r = Report(
        policy_name=policy.name,
        policy_digest=policy.digest,
        source_path="/src/app",
        revision=kw.pop("revision", REV),
        repo=kw.pop("repo", REPO),
        verified_at="2026-11-02T09:30:00Z",
        **kw,
    )
    r.add(Finding("image.signature", f"{IMG}:1.0", "pass", "verified"))
    r.images.append(ImageResult(f"{IMG}:1.0", D1))
    r.add_input(InputAttestation(f"oci://{IMG}:sha256-{'1a' * 32}.sig", D2))
    if deny:
        r.add(Finding("image.policy", "other/x:1", "fail", "no-policy"))
    return r


# --- the statement -------------------------------------------------------------------------


def test_statement_fields(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    report = _report(policy)
    stmt = build_statement(report, policy, "kind: ConfigMap\n")
    p = stmt["predicate"]
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == VSA_V1
    assert p["verifier"]["id"] == VERIFIER_ID
    assert set(p["verifier"]["version"]) == {"gitops-gate"}
    assert p["timeVerified"] == report.verified_at
    assert p["resourceUri"] == f"git+{REPO}@{REV}"
    assert p["policy"] == {
        "uri": (tmp_path / "policy.yaml").as_uri(),
        "digest": {"sha256": policy.digest.removeprefix("sha256:")},
    }
    assert p["inputAttestations"] == [
        {"uri": f"oci://{IMG}:sha256-{'1a' * 32}.sig", "digest": {"sha256": "2b" * 32}}
    ]
    assert p["verificationResult"] == "PASSED"
    assert p["verifiedLevels"] == []
    manifests_hex = hashlib.sha256(b"kind: ConfigMap\n").hexdigest()
    assert stmt["subject"] == [
        {"name": "manifests.yaml", "digest": {"sha256": manifests_hex}},
        {"name": IMG, "digest": {"sha256": "1a" * 32}},
    ]


def test_statement_validates_against_the_shipped_schema(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    for report in (_report(policy), _report(policy, deny=True)):
        stmt = build_statement(report, policy, "a: 1\n")
        schema = json.loads(
            (ROOT / "attestations/schemas/slsa-verification-summary-v1.schema.json").read_text()
        )
        jsonschema.Draft202012Validator(schema).validate(stmt["predicate"])
        # ... and through the gate's own statement parser and schema check.
        parsed = parse_statement("application/vnd.in-toto+json", json.dumps(stmt).encode())
        validate_predicate(parsed)


def test_deny_is_failed_without_manifests(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    stmt = build_statement(_report(policy, deny=True), policy, None)
    assert stmt["predicate"]["verificationResult"] == "FAILED"
    assert stmt["predicate"]["verifiedLevels"] == ["FAILED"]
    assert [s["name"] for s in stmt["subject"]] == [IMG]


def test_audit_allow_with_softened_failures_is_failed(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    report = _report(policy, deny=True)
    report.apply_audit_mode()
    assert report.decision == "allow"
    stmt = build_statement(report, policy, "a: 1\n")
    assert stmt["predicate"]["verificationResult"] == "FAILED"
    assert all(s["name"] != "manifests.yaml" for s in stmt["subject"])


def test_resource_uri_local_path_is_a_file_uri(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    report = _report(policy, repo=None)
    assert resource_uri(report) == "file:///src/app"
    report.repo = "git+ssh://git@example.com/x.git"
    assert resource_uri(report) == f"git+ssh://git@example.com/x.git@{REV}"


def test_subjects_skip_exempt_and_fall_back_to_the_resource_name(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    report = Report("p", policy.digest, "/src", None, None, verified_at="2026-11-02T09:30:00Z")
    report.add(Finding("image.policy", f"{IMG}@{D1}", "exempt", "exempt"))
    report.images.append(ImageResult(f"{IMG}@{D1}", D1))
    out = subjects(report, None, "file:///src")
    assert out == [
        {"name": "file:///src", "digest": {"sha256": hashlib.sha256(b"file:///src").hexdigest()}}
    ]


def test_proven_git_commit_is_a_subject(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    report = _report(policy)
    report.add(Finding("git.signers", REV, "pass", "threshold-met"))
    report.add(Finding("git.tree", "/src/app", "pass", "tree-matches"))
    stmt = build_statement(report, policy, None)
    assert {"name": f"git+{REPO}@{REV}", "digest": {"gitCommit": REV}} in stmt["subject"]


# --- the key -------------------------------------------------------------------------------


def test_key_relative_to_policy_and_password(tmp_path: Path, key_file: Path) -> None:
    vsa = _signer(tmp_path, key_file)
    assert vsa.key_path == key_file


@pytest.mark.parametrize(
    ("env", "needle"),
    [({}, "GATE_VSA_KEY_PASSWORD is not set"), ({"GATE_VSA_KEY_PASSWORD": "nope"}, "password")],
)
def test_key_password_errors_are_usage_errors(
    tmp_path: Path, key_file: Path, env: dict[str, str], needle: str
) -> None:
    with pytest.raises(UsageError) as e:
        load_vsa_signer(_policy(tmp_path), env)
    assert e.value.exit_code == EXIT_USAGE
    assert needle in e.value.diagnostics()
    if env:
        assert isinstance(e.value, KeyPasswordError)


def test_missing_key_file_and_no_output_vsa(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the VSA signing key"):
        load_vsa_signer(_policy(tmp_path, "absent.key"), {"GATE_VSA_KEY_PASSWORD": ""})
    bare = make_policy({"images": [{"match": ["**"], "exempt": "x"}]})
    with pytest.raises(UsageError) as e:
        load_vsa_signer(bare, {"GATE_VSA_KEY_PASSWORD": ""})
    assert "spec.output.vsa.key" in e.value.diagnostics()


def test_empty_password_opens_a_key_without_one(tmp_path: Path, pair: KeyPair) -> None:
    (tmp_path / "vsa.key").write_bytes(pair.private_pem(b""))
    load_vsa_signer(_policy(tmp_path), {"GATE_VSA_KEY_PASSWORD": ""})


# --- the signature, checked with cryptography directly -----------------------------------------


def test_envelope_verifies_with_cryptography(tmp_path: Path, key_file: Path, pair: KeyPair) -> None:
    policy = _policy(tmp_path)
    vsa = sign_vsa(_report(policy), policy, _signer(tmp_path, key_file), "a: 1\n")
    doc = json.loads(vsa.envelope_json())
    import base64

    payload = base64.b64decode(doc["payload"])
    assert doc["payloadType"] == "application/vnd.in-toto+json"
    assert doc["signatures"][0]["keyid"] == ""
    public = pair.public_key
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(
        base64.b64decode(doc["signatures"][0]["sig"]),
        pae("application/vnd.in-toto+json", payload),
        ec.ECDSA(hashes.SHA256()),
    )
    assert json.loads(payload) == vsa.statement
    assert vsa.statement_digest == "sha256:" + hashlib.sha256(payload).hexdigest()


# --- the round trip: a policy rule that requires the gate's VSA --------------------------------


def _no_root() -> TrustRoot:
    raise AssertionError("a key-signed bare envelope needs no trust root")


def _require(
    envelope: bytes, pub: KeyPair, digest: str = D1, **vsa: str
) -> tuple[bool, str | None]:
    rule = AttestationRule.model_validate(
        {"predicateType": VSA_V1, "signers": ["gate"], "vsa": {"verifierId": VERIFIER_ID, **vsa}}
    )
    keys = {"gate": Key.model_validate({"publicKey": pub.public_pem().decode()})}
    result = evaluate_rule(
        rule,
        keys,
        # As a .att layer carries it: the (unsigned) predicateType hint makes an envelope
        # that fails its signature a candidate that failed, not a missing attestation.
        [Material("dsse", "vsa.json", envelope, {"predicateType": VSA_V1})],
        digest,
        _no_root,
        dt.datetime.now(dt.UTC),
    )
    return result.ok, None if result.ok else result.error("img", VSA_V1).reason


def test_round_trip_accepts_and_denies(tmp_path: Path, key_file: Path, pair: KeyPair) -> None:
    policy = _policy(tmp_path)
    signer = _signer(tmp_path, key_file)
    good = sign_vsa(_report(policy), policy, signer, "a: 1\n").envelope.to_json()
    req = {"resourceUri": f"git+{REPO}@*", "policyDigest": policy.digest}
    assert _require(good, pair, **req) == (True, None)
    manifests = "sha256:" + hashlib.sha256(b"a: 1\n").hexdigest()
    assert _require(good, pair, manifests, **req) == (True, None)

    failed = sign_vsa(_report(policy, deny=True), policy, signer).envelope.to_json()
    assert _require(failed, pair, **req) == (False, "vsa-failed")
    assert _require(good, generate_key_pair(), **req) == (False, "untrusted-signer")
    other_repo = sign_vsa(_report(policy, repo="https://github.com/evil/x"), policy, signer)
    assert _require(other_repo.envelope.to_json(), pair, **req) == (False, "vsa-resource-mismatch")
    assert _require(good, pair, resourceUri=req["resourceUri"], policyDigest="sha256:" + "0" * 64)[
        1
    ] == ("vsa-policy-mismatch")
    assert _require(good, pair, D2, **req) == (False, "subject-mismatch")
