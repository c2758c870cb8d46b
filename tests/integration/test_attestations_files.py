"""Attestations supplied as files (``gate verify --attestations``) against the real registry.

The image has NO attestation in the registry; the supplied file is the only
candidate, and it counts only where a policy signer signed it and its signed
statement names this image's digest. Also: in-toto links found as
attestations of the image (layout without a links directory).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from gate.cli import main
from gate.signing import KeyKind, KeyPair, Signer, generate_key_pair
from testkit import attestations as a
from testkit import cosign
from testkit.registry import Registry
from testkit.sigstore_authority import Authority
from tests.integration.test_attestations_registry import FULL, World
from tests.unit.helpers import deployment, write_source

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return generate_key_pair()


@pytest.fixture
def w(
    registry: Registry, sigstore_authority: Authority, key: KeyPair, tmp_path: Path, repo_name: str
) -> World:
    return World(registry, sigstore_authority, key, tmp_path, repo_name)


def verify(w: World, policy: Path, *files: Path) -> tuple[int, list[str], str | None, dict]:  # type: ignore[type-arg]
    src = write_source(
        w.tmp / f"src-{uuid.uuid4().hex[:6]}", deployment("app", w.registry.ref(w.repo, "1.0"))
    )
    report, out = w.tmp / "report.json", w.tmp / "out.yaml"
    out.unlink(missing_ok=True)
    argv = ["verify", str(src), "--policy", str(policy), "--report", str(report)]
    argv += ["--manifests", str(out)]
    for f in files:
        argv += ["--attestations", str(f)]
    code = main(argv)
    doc = json.loads(report.read_text())
    reasons = [
        f["reason"]
        for f in doc["findings"]
        if f["check"] == "image.attestation" and f["outcome"] == "fail"
    ]
    return code, reasons, out.read_text() if out.exists() else None, doc


def keyless_bundle_file(w: World, digest: str, name: str = "prov.sigstore.json") -> Path:
    payload = a.statement_bytes(w.provenance(digest))
    bundle = w.authority.sign_dsse(payload, a.IN_TOTO_PAYLOAD_TYPE, **w.keyless().kwargs())
    path = w.tmp / name
    path.write_text(json.dumps(bundle))
    return path


def test_bundle_file_allows_an_image_with_no_attestation_in_the_registry(w: World) -> None:
    img = w.image()
    policy = w.policy(FULL)
    assert verify(w, policy)[:2] == (1, ["attestation-missing"])  # nothing in the registry
    code, reasons, out, doc = verify(w, policy, keyless_bundle_file(w, img.digest))
    assert code == 0, reasons
    assert out is not None and img.digest in out
    assert any(
        f["outcome"] == "pass" and "prov.sigstore.json" in f["detail"] for f in doc["findings"]
    )


def test_json_lines_file_counts_only_the_line_about_this_image(w: World) -> None:
    other = w.image()
    img = w.image()
    lines = [
        keyless_bundle_file(w, d, f"{i}.json").read_text()
        for i, d in enumerate((other.digest, img.digest))
    ]
    path = w.tmp / "all.intoto.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, reasons, _, _ = verify(w, w.policy(FULL), path)
    assert code == 0, reasons


def test_bundle_file_about_another_digest_is_denied(w: World) -> None:
    other = w.image()
    w.image()  # pushed last: the tag the deployment names
    code, reasons, out, doc = verify(w, w.policy(FULL), keyless_bundle_file(w, other.digest))
    assert (code, out) == (1, None)
    assert reasons in (["attestation-missing"], ["subject-mismatch"])
    detail = next(f["detail"] for f in doc["findings"] if f["check"] == "image.attestation")
    assert "subject-mismatch" in detail  # the file was examined and said why it did not count


def test_dsse_file_signed_by_an_untrusted_key_is_denied(w: World) -> None:
    img = w.image()
    stranger = generate_key_pair()
    env = a.sign_statement(w.provenance(img.digest), Signer(stranger.private_key))
    path = w.tmp / "prov.dsse.json"
    path.write_bytes(env.to_json())
    code, reasons, out, _ = verify(w, w.policy(None, signers=("ci",)), path)
    assert (code, out) == (1, None)
    assert reasons in (["attestation-missing"], ["untrusted-signer"])
    # The same statement signed by the policy's key is allowed.
    path.write_bytes(
        a.sign_statement(w.provenance(img.digest), Signer(w.key.private_key)).to_json()
    )
    assert verify(w, w.policy(None, signers=("ci",)), path)[0] == 0


def test_unparsable_file_is_a_failure_not_ignored(w: World) -> None:
    img = w.image()
    cosign.attest_image_bundle(
        w.registry,
        w.repo,
        img,
        a.SLSA_PROVENANCE_V1,
        statement=w.provenance(img.digest),
        keyless=w.keyless(),
    )
    bad = w.tmp / "bad.json"
    bad.write_text("not json\n")
    code, reasons, out, _ = verify(w, w.policy(FULL), bad)
    assert (code, out) == (1, None)
    assert reasons == ["malformed-statement"]
    bad.write_text('{"hello": "world"}')
    assert verify(w, w.policy(FULL), bad)[:2] == (1, ["malformed-statement"])


def test_missing_file_is_a_usage_error(w: World) -> None:
    assert verify_usage(w, w.tmp / "absent.json") == 2


def verify_usage(w: World, path: Path) -> int:
    src = write_source(w.tmp / "src-u", deployment("app", w.registry.ref(w.repo, "1.0")))
    return main(["verify", str(src), "--policy", str(w.policy(FULL)), "--attestations", str(path)])


# --- in-toto links found as attestations of the image ----------------------------------------


def _layout_policy(w: World, chain: a.InTotoChain, owner: KeyPair) -> Path:
    policy = w.policy(None, signers=("ci",))
    doc = yaml.safe_load(policy.read_text())
    doc["spec"]["keys"]["layout-owner"] = {"publicKey": owner.public_pem().decode()}
    doc["spec"]["images"][0]["attestations"][0]["layout"] = {
        "path": str(chain.layout_path),
        "keys": ["layout-owner"],
    }
    policy.write_text(yaml.safe_dump(doc))
    return policy


def _link_statement(
    w: World, chain: a.InTotoChain, step: str, functionary: KeyPair, digest: str
) -> None:
    link = chain.links[step].signed
    stmt = a.statement(
        [a.subject(n, d) for n, d in link.products.items()],
        "https://in-toto.io/attestation/link/v0.3",
        {
            "name": link.name,
            "command": list(link.command),
            "materials": [{"name": n, "digest": d} for n, d in link.materials.items()],
            "byproducts": dict(link.byproducts),
            "environment": {},
        },
    )
    cosign.attest_image_legacy(
        w.registry,
        w.repo,
        digest,
        "https://in-toto.io/attestation/link/v0.3",
        statement=stmt,
        key=functionary,
    )


def test_layout_links_found_as_attestations_of_the_image(w: World) -> None:
    owner, coder, packager = (generate_key_pair(KeyKind.ED25519) for _ in range(3))
    chain = a.make_in_toto_chain(w.tmp / "chain", owner=owner, coder=coder, packager=packager)
    for p in chain.link_paths.values():
        p.unlink()  # no links directory: only what the registry holds
    img = w.image()
    cosign.attest_image_legacy(
        w.registry,
        w.repo,
        img.digest,
        a.SLSA_PROVENANCE_V1,
        statement=w.provenance(img.digest),
        key=w.key,
    )
    policy = _layout_policy(w, chain, owner)
    assert verify(w, policy)[:2] == (1, ["layout-links-missing"])
    _link_statement(w, chain, "write-code", coder, img.digest)
    assert verify(w, policy)[:2] == (1, ["layout-invalid"])  # the package step is still missing
    _link_statement(w, chain, "package", packager, img.digest)
    code, reasons, _, _ = verify(w, policy)
    assert code == 0, reasons
