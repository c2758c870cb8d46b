"""in-toto links found as attestations: classic links in DSSE and link-predicate Statements."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gate.evidence.intoto import verify_layout
from gate.evidence.statement import AttestationError
from gate.signing import KeyKind, KeyPair, Signer, generate_key_pair
from testkit.attestations import (
    InTotoChain,
    make_in_toto_chain,
    sign_statement,
    sslib_signer,
    statement,
    subject,
)

OWNER, CODER, PACKAGER, OTHER = (generate_key_pair(KeyKind.ED25519) for _ in range(4))
KEYS = {"owner": OWNER.public_key}
LINK_V03 = "https://in-toto.io/attestation/link/v0.3"


def _chain(tmp: Path, **kw: Any) -> InTotoChain:
    return make_in_toto_chain(tmp / "chain", owner=OWNER, coder=CODER, packager=PACKAGER, **kw)


def _dsse_link(chain: InTotoChain, step: str, signer: KeyPair) -> bytes:
    """The step's classic link, signed by ``signer`` in a DSSE envelope (in-toto 3 style)."""
    from in_toto.models.metadata import Envelope

    env = Envelope.from_signable(chain.links[step].signed)
    env.create_signature(sslib_signer(signer))
    return json.dumps(env.to_dict()).encode()


def _statement_link(chain: InTotoChain, step: str, signer: KeyPair, **change: Any) -> bytes:
    """The step's link as an in-toto v1 Statement with the link v0.3 predicate (keyid "")."""
    link = chain.links[step].signed
    products = change.get("products", link.products)
    stmt = statement(
        [subject(name, d) for name, d in products.items()],
        LINK_V03,
        {
            "name": link.name,
            "command": list(link.command),
            "materials": [{"name": n, "digest": d} for n, d in link.materials.items()],
            "byproducts": dict(link.byproducts),
            "environment": {},
        },
    )
    return sign_statement(stmt, Signer(signer.private_key)).to_json()


def test_classic_links_in_dsse_verify_without_a_directory(tmp_path: Path) -> None:
    c = _chain(tmp_path)
    envs = [_dsse_link(c, "write-code", CODER), _dsse_link(c, "package", PACKAGER)]
    verify_layout(c.layout_path, KEYS, None, link_envelopes=envs)


def test_link_predicate_statements_verify(tmp_path: Path) -> None:
    c = _chain(tmp_path)
    envs = [_statement_link(c, "write-code", CODER), _statement_link(c, "package", PACKAGER)]
    verify_layout(c.layout_path, KEYS, None, link_envelopes=envs)


def test_directory_and_attestations_combine(tmp_path: Path) -> None:
    c = _chain(tmp_path)
    links = tmp_path / "links"
    links.mkdir()
    c.link_paths["write-code"].rename(links / c.link_paths["write-code"].name)
    verify_layout(
        c.layout_path, KEYS, links, link_envelopes=[_statement_link(c, "package", PACKAGER)]
    )


def test_no_links_at_all_is_a_clear_deny(tmp_path: Path) -> None:
    c = _chain(tmp_path)
    unrelated = sign_statement(
        statement([subject("x", "sha256:" + "a" * 64)], "https://slsa.dev/provenance/v1", {}),
        Signer(CODER.private_key),
    ).to_json()
    with pytest.raises(AttestationError) as e:
        verify_layout(c.layout_path, KEYS, None, link_envelopes=[unrelated])
    assert e.value.reason == "layout-links-missing"


def test_link_by_an_unauthorized_functionary_does_not_count(tmp_path: Path) -> None:
    c = _chain(tmp_path)
    envs = [_statement_link(c, "write-code", CODER), _statement_link(c, "package", OTHER)]
    with pytest.raises(AttestationError) as e:
        verify_layout(c.layout_path, KEYS, None, link_envelopes=envs)
    assert e.value.reason == "layout-invalid"
    assert "package" in e.value.message


def test_statement_changed_after_signing_does_not_count(tmp_path: Path) -> None:
    c = _chain(tmp_path)
    good = json.loads(_statement_link(c, "package", PACKAGER))
    stmt = json.loads(base64.b64decode(good["payload"]))
    stmt["subject"].append({"name": "backdoor.sh", "digest": {"sha256": "b" * 64}})
    good["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    envs = [_statement_link(c, "write-code", CODER), json.dumps(good).encode()]
    with pytest.raises(AttestationError) as e:
        verify_layout(c.layout_path, KEYS, None, link_envelopes=envs)
    assert e.value.reason == "layout-invalid"


def test_products_that_break_the_rules_fail(tmp_path: Path) -> None:
    c = _chain(tmp_path)
    extra = dict(c.links["package"].signed.products)
    extra["backdoor.sh"] = {"sha256": "b" * 64}  # signed, but the layout DISALLOWs it
    envs = [
        _statement_link(c, "write-code", CODER),
        _statement_link(c, "package", PACKAGER, products=extra),
    ]
    with pytest.raises(AttestationError) as e:
        verify_layout(c.layout_path, KEYS, None, link_envelopes=envs)
    assert e.value.reason == "layout-invalid"
    assert "RuleVerificationError" in e.value.message
