"""Step 5: image signatures. The engine's ``ImageVerifier`` for cosign and Sigstore.

For every distinct image reference, concurrently and under one deadline:

1. resolve the reference to a digest once (a ``tag@digest`` is verified at the
   digest; a tag that now names something else is reported);
2. discover the signatures of that digest in both forms cosign writes:
   legacy ``sha256-<hex>.sig`` layers (in ``signatureRepository`` when the
   rule sets one, as ``COSIGN_REPOSITORY``) and Sigstore bundle referrers
   (referrers API or the ``sha256-<hex>`` tag-schema fallback);
3. verify each against each signer the rule names (``gate.evidence``: pure,
   no network), and count the DISTINCT policy keys satisfied, by distinct
   signing identities, toward ``threshold``;
4. record one finding per image with a stable reason code and return the
   digests that passed (the engine pins exactly those).

Fail closed: anything that could not be fetched is ``registry-unreachable``
(exit 3); any exception is a failure; a genuine signature for another digest
is ``digest-mismatch``; an image with no signature material is ``unsigned``.

Reason codes: ``unsigned``, ``untrusted-signer``, ``bad-signature``,
``digest-mismatch``, ``identity-mismatch``, ``issuer-mismatch``,
``certificate-expired``, ``tlog-invalid``, ``sct-invalid``,
``threshold-not-met``, ``registry-unreachable`` (and the engine's
``no-policy`` / ``exempt``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from gate.aio import run_sync
from gate.errors import (
    FetchError,
    GateError,
    MissingEvidenceError,
    SignatureError,
    ThresholdError,
    VerificationError,
)
from gate.evidence import fulcio, rekor
from gate.evidence.bundle import (
    Artifact,
    check_statement,
    load_bundle_json,
    verify_key_bundle,
    verify_keyless_bundle,
)
from gate.evidence.bundle import key_fingerprint as _fingerprint
from gate.evidence.cosign import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLESIGNING_MEDIA_TYPE,
    check_binding,
    decode_signature,
    load_policy_key,
    parse_simple_signing,
    verify_key_signature,
)
from gate.evidence.identity import check_identity, read_identity
from gate.evidence.reasons import rank
from gate.policy.model import Key, KeylessIdentity, SignerSet
from gate.reference import ImageReference
from gate.signing.keys import PublicKey
from gate.sources.registry import Deadline, RegistryClient, signature_tag
from gate.sources.trustroot import TrustRoot, lazy_policy_trust_root

if TYPE_CHECKING:  # pragma: no cover
    from gate.engine import Context, ImageCheck

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_PREDICATE_TYPE_ANNOTATION = "dev.sigstore.bundle.predicateType"
COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
CHECK = "image.signature"
#: Bounds on the signature material read per image (a registry may list thousands).
MAX_SIG_LAYERS = 32
MAX_REFERRERS = 32
DEFAULT_DEADLINE_S = 45.0


T = TypeVar("T")


# --- signature material --------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One piece of signature material found for an image digest (untrusted until verified)."""

    form: Literal["legacy", "bundle"]
    where: str
    data: bytes  # legacy: the simple-signing payload; bundle: the bundle JSON
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: Where it can be fetched again (the VSA's inputAttestations): ``oci://repo:tag``
    #: for a legacy ``.sig`` layer, ``oci://repo@<referrer digest>`` for a bundle.
    uri: str = ""

    @property
    def digest(self) -> str:
        """sha256 of the bytes verified: the OCI blob digest of the layer."""
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class SignatureVerdict:
    """Cosign signatures of one digest: the material that verified, and the failure if any."""

    used: tuple[Candidate, ...]  # verified material (VSA inputs), also when short of threshold
    failure: GateError | None  # None: the threshold was met
    detail: str = ""  # who signed, for a pass finding


@dataclass(frozen=True)
class Signer:
    name: str
    key: Key
    #: What makes two policy names the same key (a threshold counts distinct keys).
    identity: str
    public_key: PublicKey | None = None


@dataclass
class Outcome:
    """Per image: which signers verified (with which evidence) and why the others did not."""

    verified: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (evidence, where)
    failures: dict[str, VerificationError] = field(default_factory=dict)
    used: dict[str, Candidate] = field(default_factory=dict)  # name -> the material that verified


def _signers(names: Sequence[str], keys: Mapping[str, Key]) -> list[Signer]:
    out = []
    for name in names:
        key = keys[name]
        if key.public_key is not None:
            pk = load_policy_key(key.public_key)
            out.append(Signer(name, key, f"key:{_fingerprint(pk)}", pk))
        elif key.keyless is not None:
            k = key.keyless
            out.append(Signer(name, key, f"keyless:{k.issuer}|{k.subject}|{k.subject_regexp}"))
        else:
            out.append(Signer(name, key, f"{key.kind}:{name}"))
    return out


def max_distinct(pairs: set[tuple[str, str]]) -> int:
    """Size of a maximum matching between policy keys and signing identities.

    Each policy key counts once and each signing identity backs one key: one
    certificate that matches two keyless entries, or two names for one public
    key, never make a threshold of two.
    """
    by_key: dict[str, list[str]] = {}
    for k, e in pairs:
        by_key.setdefault(k, []).append(e)
    match: dict[str, str] = {}  # evidence -> key

    def augment(k: str, seen: set[str]) -> bool:
        for e in by_key[k]:
            if e in seen:
                continue
            seen.add(e)
            if e not in match or augment(match[e], seen):
                match[e] = k
                return True
        return False

    return sum(1 for k in by_key if augment(k, set()))


# --- verifying one candidate for one signer (pure) --------------------------------------------


@dataclass(frozen=True)
class _Env:
    ref: ImageReference
    digest: str
    now: dt.datetime
    trust_root: Callable[[], TrustRoot]


def simple_signing_candidates(ref: ImageReference, digest: str) -> list[bytes]:
    """The simple-signing payloads cosign would sign for ``ref`` at ``digest``, byte for byte
    (Go ``json.Marshal`` order), for bundles that carry only the payload's digest."""
    names = [ref.name]
    if ref.registry == "docker.io":
        names.append(f"index.docker.io/{ref.repository}")
    out = []
    for name in names:
        doc = {
            "critical": {
                "identity": {"docker-reference": name},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
        out.append(json.dumps(doc, separators=(",", ":")).encode())
    return out


def _message_artifact(doc: Mapping[str, Any], env: _Env) -> Artifact:
    """The artifact a message-signature bundle signed, if it is this image's payload."""
    try:
        import base64

        signed = base64.b64decode(doc["messageSignature"]["messageDigest"]["digest"])
    except (KeyError, TypeError, ValueError) as e:
        raise SignatureError("the bundle's message signature has no message digest") from e
    for payload in simple_signing_candidates(env.ref, env.digest):
        if hashlib.sha256(payload).digest() == signed:
            return Artifact.of(payload)
    raise VerificationError(
        "the bundle's message signature is not over this image's signing payload",
        reason="digest-mismatch",
        found=f"sha256:{signed.hex()}",
        expected=f"the simple-signing payload for {env.ref.name}@{env.digest}",
        hint="a signature made for another image (or another repository name)",
    )


def _verify_legacy(cand: Candidate, signer: Signer, env: _Env) -> str:
    ann = cand.annotations
    sig_text = ann.get(SIGNATURE_ANNOTATION)
    if not sig_text:
        raise SignatureError("the signature layer has no signature annotation")
    signature = decode_signature(sig_text)
    if signer.public_key is not None:
        try:
            verify_key_signature(signer.public_key, signature, cand.data)
        except SignatureError as e:
            # Without a key hint we cannot tell another key from a changed payload.
            raise SignatureError(
                f"the signature does not verify with key {signer.name!r}",
                reason="untrusted-signer",
                hint="signed by a key the policy does not trust, or changed after signing",
            ) from e
        if ann.get(BUNDLE_ANNOTATION):
            # A log entry the signer chose to attach must hold too (never ignored).
            rekor.verify_legacy_entry(
                ann[BUNDLE_ANNOTATION],
                env.trust_root(),
                payload=cand.data,
                signature=signature,
                signer=signer.public_key,
                now=env.now,
            )
        evidence = signer.identity
    elif signer.key.keyless is not None:
        evidence = _verify_legacy_keyless(cand, signature, signer.key.keyless, env)
    else:
        raise SignatureError(
            f"key {signer.name!r} is a {signer.key.kind} key, which cannot sign images",
            reason="untrusted-signer",
        )
    check_binding(parse_simple_signing(cand.data), env.digest)
    return evidence


def _verify_legacy_keyless(
    cand: Candidate, signature: bytes, expected: KeylessIdentity, env: _Env
) -> str:
    pem = cand.annotations.get(CERTIFICATE_ANNOTATION)
    if not pem:
        raise SignatureError(
            "a key-based signature; the policy expects a keyless (Fulcio) signer",
            reason="untrusted-signer",
        )
    cert = fulcio.load_certificate(pem)
    # The signature is over these payload bytes by the certificate's key.
    verify_key_signature(cert.public_key(), signature, cand.data)  # type: ignore[arg-type]
    bundle = cand.annotations.get(BUNDLE_ANNOTATION)
    if not bundle:
        raise rekor.TlogError(
            "the keyless signature has no transparency-log bundle",
            hint="an ephemeral certificate is only trustworthy with the log's timestamp",
        )
    root = env.trust_root()
    entry = rekor.verify_legacy_entry(
        bundle, root, payload=cand.data, signature=signature, signer=cert, now=env.now
    )
    fulcio.verify_certificate(cert, root, entry.integrated_at)
    identity = read_identity(cert)
    check_identity(identity, expected)
    return f"keyless:{identity.issuer}:{identity.subject}"


def _verify_bundle(cand: Candidate, signer: Signer, env: _Env) -> str:
    doc = load_bundle_json(cand.data)
    artifact = _message_artifact(doc, env) if "messageSignature" in doc else None
    if signer.public_key is not None:
        result = verify_key_bundle(cand.data, signer.public_key, artifact, _maybe_root(env))
    elif signer.key.keyless is not None:
        result = verify_keyless_bundle(cand.data, env.trust_root(), signer.key.keyless, artifact)
    else:
        raise SignatureError(
            f"key {signer.name!r} is a {signer.key.kind} key, which cannot sign images",
            reason="untrusted-signer",
        )
    if result.content == "dsse-envelope":
        check_statement(result.payload_type, result.payload, env.digest)
    return result.signer_id


def _maybe_root(env: _Env) -> TrustRoot | None:
    try:
        return env.trust_root()
    except GateError:
        return None  # key bundles without log entries need no trust root


def verify_candidate(cand: Candidate, signer: Signer, env: _Env) -> str:
    """The signing identity if ``cand`` is ``signer``'s valid signature of this digest."""
    if cand.form == "legacy":
        return _verify_legacy(cand, signer, env)
    return _verify_bundle(cand, signer, env)


# --- the verifier -------------------------------------------------------------------------


class CosignImageVerifier:
    """Verifies cosign / Sigstore image signatures (``engine.ImageVerifier``)."""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = 16,
        deadline_s: float = DEFAULT_DEADLINE_S,
        docker_config: str | Path | None = None,
    ) -> None:
        self.transport = transport
        self.concurrency = concurrency
        self.deadline_s = deadline_s
        self.docker_config = docker_config
        self.last_stats: Any = None

    def verify_images(
        self, ctx: Context, checks: Sequence[ImageCheck]
    ) -> dict[ImageReference, str]:
        return run_sync(lambda: self._run(ctx, checks))

    async def _run(self, ctx: Context, checks: Sequence[ImageCheck]) -> dict[ImageReference, str]:
        spec = ctx.policy.policy.spec
        deadline = Deadline(self.deadline_s)
        trust_root = lazy_policy_trust_root(ctx.policy)

        verified: dict[ImageReference, str] = {}
        async with RegistryClient(
            spec.registries,
            transport=self.transport,
            concurrency=self.concurrency,
            deadline=deadline,
            docker_config=self.docker_config,
        ) as client:

            async def one(check: ImageCheck) -> None:
                subject = str(check.ref)
                try:
                    digest = await self._check(client, ctx, check, trust_root)
                except Exception as exc:  # fail closed: every exception is a failure
                    ctx.findings.error(CHECK, subject, exc)
                    return
                if digest is not None:
                    verified[check.ref] = digest

            tasks = [asyncio.ensure_future(one(c)) for c in checks]
            try:
                async with asyncio.timeout(self.deadline_s + 5.0):
                    await asyncio.gather(*tasks)
            except TimeoutError:
                for c, t in zip(checks, tasks, strict=True):
                    if not t.done():
                        t.cancel()
                        ctx.findings.error(
                            CHECK,
                            str(c.ref),
                            FetchError(f"verifying {c.ref} did not finish within the deadline"),
                        )
                        verified.pop(c.ref, None)
            self.last_stats = client.stats
        return verified

    async def _check(
        self,
        client: RegistryClient,
        ctx: Context,
        check: ImageCheck,
        trust_root: Callable[[], TrustRoot],
    ) -> str | None:
        f = ctx.findings
        ref, rule = check.ref, check.rule
        subject = str(ref)
        desc = await client.resolve(ref)
        digest = desc.digest
        if desc.tag_moved:
            f.warn(
                "image.tag",
                subject,
                "tag-moved",
                f"tag {ref.tag} now names {desc.tag_digest}; verifying the pinned {digest}",
            )
        ok = True
        if rule.attestations:
            # Attestations (issue 6): gate.image_attestations records one finding per rule.
            from gate.image_attestations import check_image_attestations

            sig_repo = _repo_name(rule.signature_repository) if rule.signature_repository else None
            ok = await check_image_attestations(client, ctx, check, digest, trust_root, sig_repo)
        if rule.signatures is None:
            return digest if ok else None
        verdict = await self.verify_signatures(
            client,
            ref,
            digest,
            rule.signatures,
            ctx.policy.policy.spec.keys,
            now=ctx.now,
            trust_root=trust_root,
            signature_repository=rule.signature_repository,
        )
        for cand in verdict.used:
            f.verified_input(cand.uri, cand.digest)
        if verdict.failure is None:
            f.passed(CHECK, subject, "verified", verdict.detail)
            return digest if ok else None
        f.error(CHECK, subject, verdict.failure)
        return None

    async def verify_signatures(
        self,
        client: RegistryClient,
        ref: ImageReference,
        digest: str,
        signatures: SignerSet,
        keys: Mapping[str, Key],
        *,
        now: dt.datetime,
        trust_root: Callable[[], TrustRoot],
        signature_repository: str | None = None,
    ) -> SignatureVerdict:
        """Discover and verify the cosign signatures of ``ref``'s repository at ``digest``.

        For any OCI artifact cosign signs by manifest digest (an image, a Helm
        chart): both storage forms, every signer of ``signatures``, distinct keys
        toward its threshold. Registry errors propagate (could not decide).
        """
        candidates = await self._discover(client, ref, digest, signature_repository)
        env = _Env(ref, digest, now, trust_root)
        signers = _signers(signatures.signers, keys)
        result = self._evaluate(candidates, signers, env)
        used = tuple(result.used.values())
        threshold = signatures.threshold
        pairs = {
            (next(s.identity for s in signers if s.name == name), evidence)
            for name, (evidence, _) in result.verified.items()
        }
        count = max_distinct(pairs)
        if count >= threshold:
            who = ", ".join(f"{n} ({w})" for n, (_, w) in sorted(result.verified.items()))
            return SignatureVerdict(used, None, f"{digest}: {count}/{threshold} signer(s): {who}")
        return SignatureVerdict(
            used, self._failure(candidates, result, count, threshold, digest, ref)
        )

    def _evaluate(
        self, candidates: Sequence[Candidate], signers: Sequence[Signer], env: _Env
    ) -> Outcome:
        out = Outcome()
        for signer in signers:
            for cand in candidates:
                try:
                    evidence = verify_candidate(cand, signer, env)
                except VerificationError as e:
                    prev = out.failures.get(signer.name)
                    if prev is None or rank(e.reason) < rank(prev.reason):
                        e.message = f"{cand.where}: {e.message}"
                        out.failures[signer.name] = e
                    continue
                except Exception as e:  # malformed material must never crash the image's check
                    err = SignatureError(
                        f"{cand.where}: unreadable signature material: {type(e).__name__}: {e}"
                    )
                    out.failures.setdefault(signer.name, err)
                    continue
                out.verified[signer.name] = (evidence, cand.where)
                out.used[signer.name] = cand
                out.failures.pop(signer.name, None)
                break
        return out

    @staticmethod
    def _failure(
        candidates: Sequence[Candidate],
        result: Outcome,
        count: int,
        threshold: int,
        digest: str,
        ref: ImageReference,
    ) -> GateError:
        if not candidates:
            return MissingEvidenceError(
                f"no signature found for {ref.name}@{digest}",
                expected=f"a cosign signature ({signature_tag(digest)}) or a Sigstore bundle "
                "referrer",
                hint="sign the image (cosign sign) or check signatureRepository",
            )
        lines = [f"  {name}: {e.reason}: {e.diagnostics()}" for name, e in result.failures.items()]
        if count > 0:
            return ThresholdError(
                f"{count} of the {threshold} distinct signer(s) required verified {digest}\n"
                + "\n".join(lines),
                hint="more distinct policy keys must sign the image",
            )
        best = min(result.failures.values(), key=lambda e: rank(e.reason))
        return VerificationError(
            f"no trusted signature for {digest} ({len(candidates)} found)\n" + "\n".join(lines),
            reason=best.reason,
        )

    async def _discover(
        self,
        client: RegistryClient,
        ref: ImageReference,
        digest: str,
        signature_repository: str | None,
    ) -> list[Candidate]:
        sig_repo = _repo_name(signature_repository) if signature_repository else ref.name
        legacy, bundles = await asyncio.gather(
            self._legacy(client, sig_repo, digest), self._bundles(client, ref.name, digest)
        )
        return [*legacy, *bundles]

    async def _legacy(self, client: RegistryClient, repo: str, digest: str) -> list[Candidate]:
        tag = signature_tag(digest)
        manifest = await client.get_manifest_if_exists(repo, tag)
        if manifest is None:
            return []
        layers = [
            layer for layer in manifest.layers() if layer.media_type == SIMPLESIGNING_MEDIA_TYPE
        ][:MAX_SIG_LAYERS]
        blobs = await asyncio.gather(*(client.get_blob(repo, layer.digest) for layer in layers))
        return [
            Candidate(
                "legacy", f"{tag} layer {i}", blob, dict(layer.annotations), f"oci://{repo}:{tag}"
            )
            for i, (layer, blob) in enumerate(zip(layers, blobs, strict=True))
        ]

    async def _bundles(self, client: RegistryClient, repo: str, digest: str) -> list[Candidate]:
        found = await client.referrers(repo, digest, artifact_type=BUNDLE_MEDIA_TYPE)
        wanted = [
            d
            for d in found
            if d.annotations.get(BUNDLE_PREDICATE_TYPE_ANNOTATION, COSIGN_SIGN_PREDICATE_TYPE)
            == COSIGN_SIGN_PREDICATE_TYPE
        ][:MAX_REFERRERS]

        async def load(desc_digest: str) -> Candidate | None:
            manifest = await client.get_manifest(repo, desc_digest)
            subject = manifest.subject()
            # The fallback index is a writable tag: a referrer must name this image.
            if subject is None or subject.digest != digest:
                return None
            layers = [x for x in manifest.layers() if x.media_type == BUNDLE_MEDIA_TYPE]
            if len(layers) != 1:
                return None
            if (
                manifest.annotations.get(
                    BUNDLE_PREDICATE_TYPE_ANNOTATION, COSIGN_SIGN_PREDICATE_TYPE
                )
                != COSIGN_SIGN_PREDICATE_TYPE
            ):
                return None
            data = await client.get_blob(repo, layers[0].digest)
            return Candidate(
                "bundle", f"referrer {desc_digest[:19]}…", data, uri=f"oci://{repo}@{desc_digest}"
            )

        loaded = await asyncio.gather(*(load(d.digest) for d in wanted))
        return [c for c in loaded if c is not None]


def _repo_name(signature_repository: str) -> str:
    from gate.reference import parse_reference

    ref = parse_reference(signature_repository, default_tag=False)
    return ref.name
