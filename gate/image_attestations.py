"""Step 5, attestations: discover an image digest's attestations and apply ``attestations[]``.

The I/O half of attestation checks (the pure half is ``gate.evidence``):
for the digest the image verifier resolved, read

- legacy ``sha256-<hex>.att`` (cosign <= 2; in ``signatureRepository`` when
  the rule sets one): one DSSE envelope per layer with its annotations;
- Sigstore bundle referrers (referrers API or the ``sha256-<hex>`` fallback
  index) other than ``cosign sign`` signatures; a referrer must name this
  digest as its ``subject`` (the fallback index is a writable tag).

Then each rule of ``ImageRule.attestations`` gives one ``image.attestation``
finding with a stable reason code. Called by ``gate.images`` per image.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gate.evidence.attestation_policy import evaluate_rule
from gate.evidence.attestations import DSSE_MEDIA_TYPE, Material
from gate.evidence.statement import AttestationError
from gate.policy.model import InTotoLayoutRequirement
from gate.sources.registry import RegistryClient
from gate.sources.registry_types import signature_tag
from gate.sources.trustroot import TrustRoot

if TYPE_CHECKING:  # pragma: no cover
    from gate.engine import Context, ImageCheck

CHECK = "image.attestation"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_PREDICATE_TYPE_ANNOTATION = "dev.sigstore.bundle.predicateType"
COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
MAX_LAYERS = 32
MAX_REFERRERS = 32


async def _legacy(client: RegistryClient, repo: str, digest: str) -> list[Material]:
    tag = signature_tag(digest, "att")
    manifest = await client.get_manifest_if_exists(repo, tag)
    if manifest is None:
        return []
    layers = [x for x in manifest.layers() if x.media_type == DSSE_MEDIA_TYPE][:MAX_LAYERS]
    blobs = await asyncio.gather(*(client.get_blob(repo, x.digest) for x in layers))
    return [
        Material("legacy", f"{tag} layer {i}", blob, dict(layer.annotations), f"oci://{repo}:{tag}")
        for i, (layer, blob) in enumerate(zip(layers, blobs, strict=True))
    ]


async def _bundles(client: RegistryClient, repo: str, digest: str) -> list[Material]:
    found = await client.referrers(repo, digest, artifact_type=BUNDLE_MEDIA_TYPE)
    wanted = [
        d
        for d in found
        if d.annotations.get(BUNDLE_PREDICATE_TYPE_ANNOTATION) != COSIGN_SIGN_PREDICATE_TYPE
    ][:MAX_REFERRERS]

    async def load(ref_digest: str) -> Material | None:
        manifest = await client.get_manifest(repo, ref_digest)
        subject = manifest.subject()
        if subject is None or subject.digest != digest:
            return None  # a referrer of another image listed under this one's tag
        layers = [x for x in manifest.layers() if x.media_type == BUNDLE_MEDIA_TYPE]
        if len(layers) != 1:
            return None
        data = await client.get_blob(repo, layers[0].digest)
        return Material(
            "bundle",
            f"referrer {ref_digest[:19]}…",
            data,
            dict(manifest.annotations),
            f"oci://{repo}@{ref_digest}",
        )

    loaded = await asyncio.gather(*(load(d.digest) for d in wanted))
    return [m for m in loaded if m is not None]


async def discover(
    client: RegistryClient, repo: str, digest: str, signature_repo: str | None
) -> list[Material]:
    """Every attestation candidate for ``repo@digest`` (unverified)."""
    legacy, bundles = await asyncio.gather(
        _legacy(client, signature_repo or repo, digest), _bundles(client, repo, digest)
    )
    return [*legacy, *bundles]


def _check_layout(ctx: Context, layout: InTotoLayoutRequirement) -> None:
    """The rule's in-toto layout over the links directory it names (paths: beside the policy)."""
    from gate.evidence.cosign import load_policy_key
    from gate.evidence.intoto import verify_layout

    base = Path(ctx.policy.path).parent

    def resolve(p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else base / p

    if layout.links is None:
        # Links stored as attestations are not read yet: never pass silently.
        raise AttestationError(
            "the rule's in-toto layout needs a links directory (layout.links)",
            reason="layout-invalid",
        )
    keys = {
        name: load_policy_key(ctx.policy.policy.spec.keys[name].public_key or "")
        for name in layout.keys
    }
    verify_layout(
        resolve(layout.path),
        keys,
        resolve(layout.links),
        allow_inspections=layout.allow_inspections,
        workdir=resolve(layout.links),
    )


async def check_image_attestations(
    client: RegistryClient,
    ctx: Context,
    check: ImageCheck,
    digest: str,
    trust_root: Callable[[], TrustRoot],
    signature_repo: str | None = None,
) -> bool:
    """Record one finding per rule; True when every rule holds."""
    f = ctx.findings
    subject = str(check.ref)
    rules = check.rule.attestations
    if not rules:
        return True
    materials: Sequence[Material] = await discover(client, check.ref.name, digest, signature_repo)
    keys = ctx.policy.policy.spec.keys
    ok = True
    for j, rule in enumerate(rules):
        where = f"spec.images[{check.rule_index}].attestations[{j}]"
        try:
            if rule.layout is not None:
                _check_layout(ctx, rule.layout)
            result = evaluate_rule(rule, keys, materials, digest, trust_root, ctx.now)
        except Exception as exc:  # fail closed
            f.error(CHECK, subject, exc)
            ok = False
            continue
        by_content = {(m.where, m.digest): m for m in materials}
        for a in result.accepted.values():
            m = by_content.get((a.where, a.material_digest))
            f.verified_input(m.uri if m is not None else a.where, a.material_digest)
        if result.ok:
            used = ", ".join(f"{a.signer} ({a.where})" for a in result.accepted.values())
            f.passed(CHECK, subject, "verified", f"{where} {rule.predicate_type}: {used}")
        else:
            ok = False
            f.error(CHECK, subject, result.error(f"{check.ref.name}@{digest}", rule.predicate_type))
    return ok
