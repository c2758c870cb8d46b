"""Step 5, attestations: discover an image digest's attestations and apply ``attestations[]``.

The I/O half of attestation checks (the pure half is ``gate.evidence``):
for the digest the image verifier resolved, read

- legacy ``sha256-<hex>.att`` (cosign <= 2; in ``signatureRepository`` when
  the rule sets one): one DSSE envelope per layer with its annotations;
- Sigstore bundle referrers (referrers API or the ``sha256-<hex>`` fallback
  index) other than ``cosign sign`` signatures; a referrer must name this
  digest as its ``subject`` (the fallback index is a writable tag);
- attestation files the caller supplied (``GateRequest.attestation_files``:
  ``gate verify --attestations``, ``$ARGOCD_ENV_GATE_ATTESTATIONS``): extra
  candidates for EVERY image. They are no more trusted than registry
  material: one counts for an image only if a policy signer signed it and
  its SIGNED statement names this image's digest (``evaluate_rule``). A file
  that cannot be read or parsed is a failure, never skipped.

A rule's in-toto layout takes its links from ``layout.links`` and from the
DSSE envelopes among the same candidates (``gate.evidence.intoto``).

Then each rule of ``ImageRule.attestations`` gives one ``image.attestation``
finding with a stable reason code. Called by ``gate.images`` per image.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import stat
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
MAX_ATTESTATION_FILE_BYTES = 16 * 1024 * 1024
MAX_FILE_MATERIALS = 256


def _file_error(path: Path, what: str, hint: str | None = None) -> AttestationError:
    return AttestationError(
        f"the attestation file {path} {what}",
        reason="attestation-file-invalid",
        hint=hint or "pass a Sigstore bundle, a DSSE envelope or JSON lines of them",
    )


def read_attestation_file(path: Path) -> list[Material]:
    """The attestation material in one supplied file (size-capped); any problem raises."""
    from gate.evidence.attestations import read_material_file

    try:
        # O_NONBLOCK: a FIFO planted in a repository must not hang the gate.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _file_error(path, f"cannot be read: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise _file_error(path, "is not a regular file")
        data = fh.read(MAX_ATTESTATION_FILE_BYTES + 1)
    if len(data) > MAX_ATTESTATION_FILE_BYTES:
        raise _file_error(path, f"is larger than {MAX_ATTESTATION_FILE_BYTES} bytes")
    materials = read_material_file(data, str(path))
    if not materials:
        raise _file_error(path, "holds no attestation")
    if len(materials) > MAX_FILE_MATERIALS:
        raise _file_error(path, f"holds more than {MAX_FILE_MATERIALS} attestations")
    for m in materials:
        doc = json.loads(m.data)
        bundle = isinstance(doc, dict) and isinstance(doc.get("dsseEnvelope"), dict)
        dsse = isinstance(doc, dict) and {"payload", "payloadType", "signatures"} <= doc.keys()
        if not (bundle or dsse):
            raise AttestationError(
                f"{m.where} is neither a Sigstore bundle with a DSSE envelope nor a DSSE envelope",
                reason="malformed-statement",
            )
    return [dataclasses.replace(m, uri=f"file:{m.where}") for m in materials]


def read_attestation_files(paths: Sequence[Path]) -> list[Material]:
    """Every supplied file's material, in order (see ``read_attestation_file``)."""
    return [m for p in paths for m in read_attestation_file(p)]


def link_envelopes(materials: Sequence[Material]) -> list[bytes]:
    """The DSSE envelopes among the candidates (in-toto links are looked for in them)."""
    out: list[bytes] = []
    for m in materials:
        if m.form != "bundle":
            out.append(m.data)
            continue
        try:
            env = json.loads(m.data).get("dsseEnvelope")
        except (ValueError, AttributeError):
            continue
        if isinstance(env, dict):
            out.append(json.dumps(env).encode())
    return out


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


def _check_layout(
    ctx: Context, layout: InTotoLayoutRequirement, materials: Sequence[Material]
) -> None:
    """The rule's in-toto layout over its links directory (beside the policy) and the
    link attestations among ``materials`` (found for the image or supplied as files)."""
    from gate.evidence.cosign import load_policy_key
    from gate.evidence.intoto import verify_layout

    base = Path(ctx.policy.path).parent

    def resolve(p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else base / p

    keys = {
        name: load_policy_key(ctx.policy.policy.spec.keys[name].public_key or "")
        for name in layout.keys
    }
    links = resolve(layout.links) if layout.links is not None else None
    verify_layout(
        resolve(layout.path),
        keys,
        links,
        allow_inspections=layout.allow_inspections,
        workdir=links,
        link_envelopes=link_envelopes(materials),
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
    files = ctx.request.attestation_files
    if files:
        try:
            materials = [*materials, *read_attestation_files(files)]
        except Exception as exc:  # an unreadable file is a failure, never ignored
            f.error(CHECK, subject, exc)
            return False
    keys = ctx.policy.policy.spec.keys
    ok = True
    for j, rule in enumerate(rules):
        where = f"spec.images[{check.rule_index}].attestations[{j}]"
        try:
            if rule.layout is not None:
                # Blocking (a child process when inspections run): off the event loop.
                await asyncio.to_thread(_check_layout, ctx, rule.layout, materials)
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
