"""Attestations end to end: ``gate verify`` against the real registry and the test authority.

Each reason code of issue 6 is triggered by its own forgery; genuine
provenance (keyless bundle referrer, keyless legacy ``.att`` with an
``intoto`` entry, key-signed v0.2 in a v0.1 statement) is allowed and pinned.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.cli import main
from gate.signing import KeyPair, Signer, generate_key_pair, sign_envelope
from testkit import attestations as a
from testkit import cosign, oci
from testkit.registry import Registry
from testkit.sigstore_authority import Authority, GitHubClaims
from tests.unit.helpers import deployment, write_policy, write_source

pytestmark = pytest.mark.integration

ISSUER = a.GITHUB_ACTIONS_ISSUER
BUILD = a.GitHubBuild()  # acme/app @ refs/tags/v1.4.0, release.yml
RELEASE = "https://github.com/acme/app/.github/workflows/release.yml"
BUILD_TYPES = [a.GITHUB_WORKFLOW_BUILD_TYPE, a.GITHUB_WORKFLOW_BUILD_TYPE_OLD]


def claims_for(build: a.GitHubBuild) -> GitHubClaims:
    return GitHubClaims.for_workflow(
        build.repository, build.workflow_path, build.ref, sha=build.commit
    )


@dataclass
class World:
    registry: Registry
    authority: Authority
    key: KeyPair
    tmp: Path
    repo: str

    def image(self) -> oci.Descriptor:
        return oci.push_image(self.registry, self.repo, "1.0", seed=uuid.uuid4().hex)

    def keyless(self, build: a.GitHubBuild = BUILD) -> cosign.Keyless:
        claims = claims_for(build)
        return cosign.Keyless(self.authority, claims.identity, ISSUER, claims)

    def provenance(self, digest: str, build: a.GitHubBuild = BUILD, **kw: Any) -> dict[str, Any]:
        return a.provenance_statement(
            [a.subject(self.registry.ref(self.repo), digest)], build, **kw
        )

    def policy(
        self,
        slsa: dict[str, Any] | None = None,
        *,
        signers: tuple[str, ...] = ("release",),
        predicate_type: str = a.SLSA_PROVENANCE_V1,
    ) -> Path:
        rule: dict[str, Any] = {"predicateType": predicate_type, "signers": list(signers)}
        if slsa is not None:
            rule["slsa"] = slsa
        spec: dict[str, Any] = {
            "keys": {
                "ci": {"publicKey": self.key.public_pem().decode()},
                "release": {"keyless": {"issuer": ISSUER, "subject": "https://github.com/acme/**"}},
            },
            "trustRoots": {"sigstore": str(self.authority.trusted_root_path)},
            "images": [{"match": [f"{self.registry.host}/**"], "attestations": [rule]}],
            "registries": [{"host": self.registry.host, "insecure": True}],
        }
        return write_policy(self.tmp / f"policy-{uuid.uuid4().hex[:6]}.yaml", spec)

    def verify(self, policy: Path) -> tuple[int, list[str], str | None]:
        src = write_source(
            self.tmp / f"src-{uuid.uuid4().hex[:6]}",
            deployment("app", self.registry.ref(self.repo, "1.0")),
        )
        report, out = self.tmp / "report.json", self.tmp / "out.yaml"
        out.unlink(missing_ok=True)
        code = main(
            [
                "verify",
                str(src),
                "--policy",
                str(policy),
                "--report",
                str(report),
                "--manifests",
                str(out),
            ]
        )
        doc = json.loads(report.read_text())
        reasons = [
            f["reason"]
            for f in doc["findings"]
            if f["check"] == "image.attestation" and f["outcome"] == "fail"
        ]
        return code, reasons, out.read_text() if out.exists() else None


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return generate_key_pair()


@pytest.fixture
def w(
    registry: Registry, sigstore_authority: Authority, key: KeyPair, tmp_path: Path, repo_name: str
) -> World:
    return World(registry, sigstore_authority, key, tmp_path, repo_name)


FULL = {
    "builderId": RELEASE + "@refs/tags/*",
    "sourceUri": BUILD.git_uri,
    "sourceVersionedTag": "v1",
    "buildTypes": BUILD_TYPES,
}


def attest(
    w: World, img: oci.Descriptor, build: a.GitHubBuild = BUILD, stmt: dict[str, Any] | None = None
) -> None:
    cosign.attest_image_bundle(
        w.registry,
        w.repo,
        img,
        a.SLSA_PROVENANCE_V1,
        statement=stmt or w.provenance(img.digest, build),
        keyless=w.keyless(build),
    )


# --- genuine --------------------------------------------------------------------------------


def test_keyless_bundle_referrer_allowed_and_pinned(w: World) -> None:
    img = w.image()
    attest(w, img)
    code, reasons, out = w.verify(w.policy(FULL))
    assert code == 0, reasons
    assert out is not None and img.digest in out


def test_keyless_legacy_att_with_intoto_entry(w: World) -> None:
    img = w.image()
    cosign.attest_image_legacy(
        w.registry,
        w.repo,
        img.digest,
        a.SLSA_PROVENANCE_V1,
        statement=w.provenance(img.digest),
        keyless=w.keyless(),
    )
    code, reasons, _ = w.verify(w.policy(FULL))
    assert code == 0, reasons


def test_key_signed_v02_in_v01_statement(w: World) -> None:
    img = w.image()
    build = replace(BUILD, builder_id=a.SLSA_GENERIC_GENERATOR + "@refs/tags/v2.1.0")
    cosign.attest_image_legacy(
        w.registry,
        w.repo,
        img.digest,
        a.SLSA_PROVENANCE_V02,
        statement=w.provenance(img.digest, build, slsa_version="v0.2"),
        key=w.key,
    )
    policy = w.policy(
        {
            "builderId": a.SLSA_GENERIC_GENERATOR + "@v2.1.0",
            "sourceUri": "github.com/acme/app",
            "sourceTag": "v1.4.0",
        },
        signers=("ci",),
        predicate_type=a.SLSA_PROVENANCE_V02,
    )
    code, reasons, _ = w.verify(policy)
    assert code == 0, reasons


# --- one forgery per reason code --------------------------------------------------------------


def test_attestation_missing(w: World) -> None:
    img = w.image()
    cosign.sign_image_bundle(w.registry, w.repo, img, key=w.key)  # a signature is no attestation
    assert w.verify(w.policy(FULL))[:2] == (1, ["attestation-missing"])


def test_annotation_claims_provenance_but_signed_body_is_another_type(w: World) -> None:
    img = w.image()
    vsa = a.vsa_statement([a.subject("x", img.digest)], resource_uri="x")
    # The unsigned annotation says SLSA provenance; the signed statement is a VSA.
    cosign.attest_image_bundle(
        w.registry, w.repo, img, a.SLSA_PROVENANCE_V1, statement=vsa, keyless=w.keyless()
    )
    cosign.attest_image_legacy(
        w.registry, w.repo, img.digest, a.SLSA_PROVENANCE_V1, statement=vsa, key=w.key
    )
    assert w.verify(w.policy(FULL))[:2] == (1, ["predicate-type-mismatch"])
    assert w.verify(w.policy(None, signers=("ci",)))[:2] == (1, ["predicate-type-mismatch"])


def test_subject_mismatch(w: World) -> None:
    other = w.image()
    img = w.image()  # pushed last: the tag the deployment names
    attest(w, img, stmt=w.provenance(other.digest))  # genuine, but about another image
    assert w.verify(w.policy(FULL))[:2] == (1, ["subject-mismatch"])


def test_builder_mismatch(w: World) -> None:
    img = w.image()
    attest(
        w, img, replace(BUILD, builder_id="https://github.com/evil/b/.github/workflows/b.yml@v1")
    )
    assert w.verify(w.policy(FULL))[:2] == (1, ["builder-mismatch"])


def test_untrusted_builder(w: World) -> None:
    img = w.image()
    attest(w, img, replace(BUILD, workflow_path=".github/workflows/ci.yml"))
    assert w.verify(w.policy(FULL))[:2] == (1, ["untrusted-builder"])


def test_source_mismatch(w: World) -> None:
    img = w.image()
    attest(w, img, replace(BUILD, source_uri="git+https://github.com/evil/app@refs/tags/v1.4.0"))
    assert w.verify(w.policy(FULL))[:2] == (1, ["source-mismatch"])


def test_branch_mismatch(w: World) -> None:
    img = w.image()
    attest(w, img, replace(BUILD, ref="refs/heads/dev"))
    policy = w.policy({"sourceUri": BUILD.git_uri, "sourceBranch": "main"})
    assert w.verify(policy)[:2] == (1, ["branch-mismatch"])


def test_tag_mismatch(w: World) -> None:
    img = w.image()
    attest(w, img)
    assert w.verify(w.policy({"sourceTag": "v1.4.1"}))[:2] == (1, ["tag-mismatch"])


def test_versioned_tag_mismatch(w: World) -> None:
    img = w.image()
    attest(w, img)
    assert w.verify(w.policy({"sourceVersionedTag": "v1.5"}))[:2] == (1, ["versioned-tag-mismatch"])


def test_invalid_ref(w: World) -> None:
    img = w.image()
    attest(w, img, replace(BUILD, ref="refs/heads/main"))
    assert w.verify(w.policy({"sourceTag": "v1.4.0"}))[:2] == (1, ["invalid-ref"])


def test_build_type_mismatch(w: World) -> None:
    img = w.image()
    attest(w, img, replace(BUILD, build_type="https://evil.example/buildtypes/anything/v1"))
    assert w.verify(w.policy(FULL))[:2] == (1, ["build-type-mismatch"])


def test_certificate_predicate_mismatch(w: World) -> None:
    img = w.image()
    # The workflow ran at one commit (the certificate) and claims another (the predicate).
    stmt = w.provenance(img.digest, replace(BUILD, commit="f" * 40))
    attest(w, img, stmt=stmt)
    assert w.verify(w.policy(FULL))[:2] == (1, ["certificate-predicate-mismatch"])


def test_payload_type_mismatch(w: World) -> None:
    img = w.image()
    payload = a.statement_bytes(w.provenance(img.digest))
    env = sign_envelope(payload, "application/json", Signer(w.key.private_key))
    layer = oci.Layer(
        env.to_json(),
        cosign.DSSE_MEDIA_TYPE,
        {cosign.SIGNATURE_ANNOTATION: "", "predicateType": a.SLSA_PROVENANCE_V1},
    )
    oci.push_signature_manifest(w.registry, w.repo, img.digest, [layer], "att")
    assert w.verify(w.policy(None, signers=("ci",)))[:2] == (1, ["payload-type-mismatch"])


def test_malformed_statement(w: World) -> None:
    img = w.image()
    stmt = w.provenance(img.digest)
    stmt["predicate"]["runDetails"]["builder"]["id"] = 42  # fails the shipped schema
    cosign.attest_image_legacy(
        w.registry, w.repo, img.digest, a.SLSA_PROVENANCE_V1, statement=stmt, key=w.key
    )
    assert w.verify(w.policy(None, signers=("ci",)))[:2] == (1, ["malformed-statement"])


def test_tampered_statement_is_a_signature_failure(w: World) -> None:
    img = w.image()
    cosign.attest_image_legacy(
        w.registry,
        w.repo,
        img.digest,
        a.SLSA_PROVENANCE_V1,
        statement=w.provenance(img.digest),
        key=w.key,
        forgery=cosign.Forgery(tamper_payload=True),
    )
    code, reasons, out = w.verify(w.policy(None, signers=("ci",)))
    assert (code, reasons, out) == (1, ["untrusted-signer"], None)


def test_layout_inspections_refused(w: World) -> None:
    from gate.signing import KeyKind
    from testkit.attestations import make_in_toto_chain

    owner = generate_key_pair(KeyKind.ED25519)
    chain = make_in_toto_chain(
        w.tmp / "chain",
        owner=owner,
        coder=generate_key_pair(KeyKind.ED25519),
        packager=generate_key_pair(KeyKind.ED25519),
        inspections=True,
    )
    img = w.image()
    attest(w, img)
    policy = w.policy(FULL)
    doc = yaml.safe_load(policy.read_text())
    doc["spec"]["keys"]["layout-owner"] = {"publicKey": owner.public_pem().decode()}
    doc["spec"]["images"][0]["attestations"][0]["layout"] = {
        "path": str(chain.layout_path),
        "keys": ["layout-owner"],
        "links": str(chain.directory),
    }
    policy.write_text(yaml.safe_dump(doc))
    assert w.verify(policy)[:2] == (1, ["layout-inspections-refused"])
