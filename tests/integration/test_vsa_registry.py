"""The gate's VSA end to end: emitted by one ``gate verify``, required by another.

A producer policy verifies a key-signed image and signs a VSA of its decision
(``--vsa``); the envelope is stored as a cosign ``.att`` layer of the image;
a consumer policy that REQUIRES a VSA from the gate's key (verifier id,
resource, policy digest) accepts it, and denies a FAILED one, one signed by
another key, one about another resource and one made under another policy,
each with its reason code.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.evidence.attestations import DSSE_MEDIA_TYPE
from gate.policy import load_policy
from gate.signing import KeyPair, generate_key_pair
from gate.vsa_emit import VERIFIER_ID
from testkit import cosign, oci
from testkit.registry import Registry
from tests.unit.helpers import deployment, write_policy, write_source

pytestmark = pytest.mark.integration

VSA = "https://slsa.dev/verification_summary/v1"
PASSWORD = "vsa-pw"
REPO = "https://github.com/acme/deploy"
REVISION = "5" * 40


@dataclass
class World:
    registry: Registry
    repo: str
    tmp: Path
    ci: KeyPair
    gate_key: KeyPair

    def signed_image(self, tag: str) -> oci.Descriptor:
        img = oci.push_image(self.registry, self.repo, tag, seed=uuid.uuid4().hex)
        cosign.sign_image_legacy(self.registry, self.repo, img.digest, key=self.ci)
        return img

    def producer(self, name: str = "producer") -> Path:
        spec: dict[str, Any] = {
            "keys": {"ci": {"publicKey": self.ci.public_pem().decode()}},
            "images": [{"match": [f"{self.registry.host}/**"], "signatures": {"signers": ["ci"]}}],
            "registries": [{"host": self.registry.host, "insecure": True}],
            "output": {"vsa": {"key": "vsa.key"}},
        }
        return write_policy(self.tmp / f"{name}.yaml", spec, name=name)

    def consumer(self, producer: Path) -> Path:
        rule = {
            "predicateType": VSA,
            "signers": ["gate"],
            "vsa": {
                "verifierId": VERIFIER_ID,
                "resourceUri": f"git+{REPO}@*",
                "policyDigest": load_policy(producer).digest,
            },
        }
        spec: dict[str, Any] = {
            "keys": {"gate": {"publicKey": self.gate_key.public_pem().decode()}},
            "images": [{"match": [f"{self.registry.host}/**"], "attestations": [rule]}],
            "registries": [{"host": self.registry.host, "insecure": True}],
        }
        return write_policy(self.tmp / "consumer.yaml", spec, name="consumer")

    def emit(self, policy: Path, images: list[str], repo: str = REPO) -> tuple[int, Path]:
        run = uuid.uuid4().hex[:6]
        src = write_source(self.tmp / f"src-{run}", deployment("app", *images))
        vsa = self.tmp / f"vsa-{run}.json"
        argv = ["verify", str(src), "--policy", str(policy), "--vsa", str(vsa)]
        code = main([*argv, "--repo", repo, "--revision", REVISION])
        return code, vsa

    def attach(self, img: oci.Descriptor, vsa: Path) -> None:
        layer = oci.Layer(vsa.read_bytes(), DSSE_MEDIA_TYPE, {"predicateType": VSA})
        oci.push_signature_manifest(self.registry, self.repo, img.digest, [layer], "att")

    def require(self, consumer: Path, tag: str) -> tuple[int, list[str]]:
        run = uuid.uuid4().hex[:6]
        src = write_source(self.tmp / f"src-{run}", deployment("app", self.ref(tag)))
        report = self.tmp / f"report-{run}.json"
        code = main(["verify", str(src), "--policy", str(consumer), "--report", str(report)])
        doc = json.loads(report.read_text())
        return code, [
            f["reason"]
            for f in doc["findings"]
            if f["check"] == "image.attestation" and f["outcome"] == "fail"
        ]

    def ref(self, tag: str) -> str:
        return self.registry.ref(self.repo, tag)


@pytest.fixture
def w(registry: Registry, repo_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    world = World(registry, repo_name, tmp_path, generate_key_pair(), generate_key_pair())
    (tmp_path / "vsa.key").write_bytes(world.gate_key.private_pem(PASSWORD.encode()))
    monkeypatch.setenv("GATE_VSA_KEY_PASSWORD", PASSWORD)
    return world


def _statement(vsa: Path) -> dict[str, Any]:
    stmt: dict[str, Any] = json.loads(base64.b64decode(json.loads(vsa.read_text())["payload"]))
    return stmt


def test_emitted_vsa_round_trips_and_forgeries_are_denied(w: World) -> None:
    producer = w.producer()
    consumer = w.consumer(producer)

    # Genuine: PASSED, about the verified image, listing the signature it verified.
    ok = w.signed_image("ok")
    code, vsa = w.emit(producer, [w.ref("ok")])
    assert code == 0
    stmt = _statement(vsa)
    assert {"name": w.ref("ok").rsplit(":", 1)[0], "digest": {"sha256": ok.digest[7:]}} in stmt[
        "subject"
    ]
    sig_tag = oci.signature_tag(ok.digest, "sig")
    inputs = stmt["predicate"]["inputAttestations"]
    assert [i["uri"] for i in inputs] == [f"oci://{w.ref('ok').rsplit(':', 1)[0]}:{sig_tag}"]
    sig_layer = oci.get_manifest(w.registry, w.repo, sig_tag).json()["layers"][0]["digest"]
    assert inputs[0]["digest"] == {"sha256": sig_layer.removeprefix("sha256:")}
    # The gate's own verify-attestation path accepts it for the image digest.
    pub = w.tmp / "gate.pub"
    pub.write_bytes(w.gate_key.public_pem())
    argv = ["verify-attestation", ok.digest, "--bundle", str(vsa), "--key", str(pub)]
    assert main([*argv, "--predicate-type", VSA]) == 0
    w.attach(ok, vsa)
    assert w.require(consumer, "ok") == (0, [])

    # FAILED: the same producer denied (another image matched no rule) -- still a VSA.
    failed = w.signed_image("failed")
    code, vsa = w.emit(producer, [w.ref("failed"), "quay.io/other/app:1"])
    assert code == 1
    assert _statement(vsa)["predicate"]["verificationResult"] == "FAILED"
    w.attach(failed, vsa)
    assert w.require(consumer, "failed") == (1, ["vsa-failed"])

    # Signed by another key (same policy file, another key file at its path).
    other_key = w.signed_image("other-key")
    (w.tmp / "vsa.key").write_bytes(generate_key_pair().private_pem(PASSWORD.encode()))
    code, vsa = w.emit(producer, [w.ref("other-key")])
    (w.tmp / "vsa.key").write_bytes(w.gate_key.private_pem(PASSWORD.encode()))
    assert code == 0
    w.attach(other_key, vsa)
    assert w.require(consumer, "other-key") == (1, ["untrusted-signer"])

    # About another resource.
    other_resource = w.signed_image("other-resource")
    code, vsa = w.emit(producer, [w.ref("other-resource")], repo="https://github.com/evil/app")
    assert code == 0
    w.attach(other_resource, vsa)
    assert w.require(consumer, "other-resource") == (1, ["vsa-resource-mismatch"])

    # Made under another policy (same rules, other bytes: another digest).
    other_policy = w.signed_image("other-policy")
    code, vsa = w.emit(w.producer("producer-staging"), [w.ref("other-policy")])
    assert code == 0
    w.attach(other_policy, vsa)
    assert w.require(consumer, "other-policy") == (1, ["vsa-policy-mismatch"])
