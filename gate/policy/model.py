"""The ``GatePolicy`` v1alpha1 model (DESIGN "Policy").

Pydantic stays at this edge: it validates the file, then the engine reads the
frozen model. Unknown fields are errors (``extra="forbid"``): a misspelt
``treshold`` must not silently impose nothing.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

API_VERSION = "gitops-gate.dev/v1alpha1"
KIND = "GatePolicy"

_SSH_KEY = re.compile(
    r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( .*)?"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NonEmpty = Annotated[str, Field(min_length=1)]


class GitHubClaims(_Model):
    """Optional conditions on the Fulcio GitHub extensions (1.3.6.1.4.1.57264.1.9-.22)."""

    repository: NonEmpty | None = None  # "acme/app" or "https://github.com/acme/app" (.12)
    ref: NonEmpty | None = None  # anchored glob over the source ref, e.g. "refs/tags/v*" (.14)
    workflow: NonEmpty | None = None  # anchored glob over the build signer URI (.9)
    runner_environment: Literal["github-hosted", "self-hosted"] | None = Field(
        default=None, alias="runnerEnvironment"
    )  # (.11)


class KeylessIdentity(_Model):
    """A Sigstore keyless signer: the OIDC issuer (exact) and the subject."""

    issuer: NonEmpty
    subject: NonEmpty | None = None
    subject_regexp: NonEmpty | None = Field(default=None, alias="subjectRegExp")
    github: GitHubClaims | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> KeylessIdentity:
        if (self.subject is None) == (self.subject_regexp is None):
            raise ValueError("give exactly one of 'subject' (anchored glob) or 'subjectRegExp'")
        if self.subject_regexp is not None:
            try:
                re.compile(self.subject_regexp)
            except re.error as e:
                raise ValueError(f"subjectRegExp is not a valid regular expression: {e}") from e
        return self


class Key(_Model):
    """A named trust anchor; exactly one kind."""

    ssh: NonEmpty | None = None
    pgp: NonEmpty | None = None
    public_key: NonEmpty | None = Field(default=None, alias="publicKey")
    keyless: KeylessIdentity | None = None

    @property
    def kind(self) -> str:
        for kind in ("ssh", "pgp", "publicKey", "keyless"):
            if getattr(self, "public_key" if kind == "publicKey" else kind) is not None:
                return kind
        raise RuntimeError("validated key without a kind")

    @model_validator(mode="after")
    def _exactly_one(self) -> Key:
        given = [
            k
            for k, v in (
                ("ssh", self.ssh),
                ("pgp", self.pgp),
                ("publicKey", self.public_key),
                ("keyless", self.keyless),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a key has exactly one kind (ssh, pgp, publicKey or keyless); "
                f"found {', '.join(given) if given else 'none'}"
            )
        if self.ssh is not None and not _SSH_KEY.fullmatch(self.ssh.strip()):
            raise ValueError("ssh must be one public key line, e.g. 'ssh-ed25519 AAAA... comment'")
        if self.pgp is not None and "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in self.pgp:
            raise ValueError("pgp must be an ASCII-armored public key block")
        if self.public_key is not None:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                load_pem_public_key(self.public_key.strip().encode())
            except (ValueError, TypeError) as e:
                raise ValueError(f"publicKey is not a PEM 'PUBLIC KEY': {e}") from e
        return self


class SignerSet(_Model):
    """Names from ``spec.keys`` and how many distinct ones must have signed."""

    signers: list[NonEmpty] = Field(min_length=1)
    threshold: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _threshold_fits(self) -> SignerSet:
        if len(set(self.signers)) != len(self.signers):
            raise ValueError("signers lists a name twice")
        if self.threshold > len(self.signers):
            n = len(self.signers)
            raise ValueError(f"threshold {self.threshold} is larger than the {n} signer(s) listed")
        return self


class GitRollback(_Model):
    """``spec.source.git.rollback``: the last allowed revision per application, and how a
    new one must relate to it (a signed old release is still signed: ADR 12).

    ``descendant``: HEAD is the last allowed commit or descends from it. ``version``: the
    release tag's version (``v1.2.3``, semver order) is not lower than the last allowed.
    """

    state: NonEmpty  # the SQLite state file; relative: beside the policy file
    mode: Literal["descendant", "version"] = "descendant"

    @field_validator("state")
    @classmethod
    def _state_is_a_file(cls, state: str) -> str:
        # ":memory:" or an SQLite URI would keep nothing between runs: no protection at all.
        if (
            "://" in state
            or state.startswith("file:")
            or state == ":memory:"
            or state.strip() != state
            or state.endswith("/")
        ):
            raise ValueError(
                f"rollback.state {state!r} must be the path of a state file (SQLite, created "
                "on the first allow), not a URI, ':memory:' or a directory"
            )
        return state


class GitSource(SignerSet):
    """``spec.source.git``: which Git signatures make a revision trusted."""

    require: Literal["commit", "tag", "tag-and-commit"] = "tag"
    tags: list[NonEmpty] = Field(default_factory=lambda: ["*"], min_length=1)
    rollback: GitRollback | None = None

    @model_validator(mode="after")
    def _version_needs_tags(self) -> GitSource:
        if (
            self.rollback is not None
            and self.rollback.mode == "version"
            and self.require == "commit"
        ):
            raise ValueError(
                "rollback mode 'version' reads the release tag's version: it needs "
                "require: tag or tag-and-commit (or use mode: descendant)"
            )
        return self


class Source(_Model):
    git: GitSource | None = None


class TrustRoots(_Model):
    sigstore: NonEmpty | None = None


class ChartRule(_Model):
    match: list[NonEmpty] = Field(min_length=1)
    provenance: SignerSet | None = None
    signatures: SignerSet | None = None
    exempt: NonEmpty | None = None

    @model_validator(mode="after")
    def _imposes_something(self) -> ChartRule:
        _exempt_or_checks(self.exempt, self.provenance is not None or self.signatures is not None)
        return self


class SlsaRequirements(_Model):
    builder_id: NonEmpty | None = Field(default=None, alias="builderId")
    source_uri: NonEmpty | None = Field(default=None, alias="sourceUri")
    source_ref: NonEmpty | None = Field(default=None, alias="sourceRef")
    source_branch: NonEmpty | None = Field(default=None, alias="sourceBranch")
    source_tag: NonEmpty | None = Field(default=None, alias="sourceTag")
    source_versioned_tag: NonEmpty | None = Field(default=None, alias="sourceVersionedTag")
    build_types: list[NonEmpty] | None = Field(default=None, alias="buildTypes", min_length=1)

    @model_validator(mode="after")
    def _one_ref_kind(self) -> SlsaRequirements:
        refs = [
            v
            for v in (
                self.source_ref,
                self.source_branch,
                self.source_tag,
                self.source_versioned_tag,
            )
            if v is not None
        ]
        if len(refs) > 1:
            raise ValueError(
                "give at most one of sourceRef, sourceBranch, sourceTag, sourceVersionedTag"
            )
        return self


_SLSA_LEVEL = re.compile(r"SLSA_[A-Z]+_LEVEL_[0-9]+")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class VsaRequirements(_Model):
    """Accept a Verification Summary Attestation (``https://slsa.dev/verification_summary/v1``)."""

    verifier_id: NonEmpty = Field(alias="verifierId")  # anchored glob over verifier.id
    resource_uri: NonEmpty | None = Field(default=None, alias="resourceUri")  # anchored glob
    min_level: NonEmpty | None = Field(default=None, alias="minLevel")  # e.g. SLSA_BUILD_LEVEL_3
    policy_uri: NonEmpty | None = Field(default=None, alias="policyUri")  # anchored glob
    # "sha256:<hex>" of the policy file the verifier used (VSA policy.digest; the gate's
    # own reports and VSAs carry it): pins the exact policy, not only its location.
    policy_digest: NonEmpty | None = Field(default=None, alias="policyDigest")

    @field_validator("policy_digest")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is not None and not _DIGEST.fullmatch(v):
            raise ValueError(f"policyDigest must look like sha256:<64 hex>, not {v!r}")
        return v

    @field_validator("min_level")
    @classmethod
    def _level(cls, v: str | None) -> str | None:
        if v is not None and not _SLSA_LEVEL.fullmatch(v):
            raise ValueError(f"minLevel must look like SLSA_BUILD_LEVEL_3, not {v!r}")
        return v


class InTotoLayoutRequirement(_Model):
    """An in-toto layout (classic Metablock) the image's supply chain must satisfy."""

    path: NonEmpty  # the signed layout file (relative paths: next to the policy file)
    keys: list[NonEmpty] = Field(min_length=1)  # spec.keys names (publicKey) that sign layouts
    links: NonEmpty | None = (
        None  # a directory of .link files (besides links found as attestations)
    )
    # Inspections run commands the layout's author chose, in the gate's process: refuse by default.
    allow_inspections: bool = Field(default=False, alias="allowInspections")


class GitHubAttestation(_Model):
    """GitHub artifact attestation options (``gh attestation verify`` flags), from Fulcio claims."""

    owner: NonEmpty | None = None  # "acme" or "https://github.com/acme" (.16)
    repository: NonEmpty | None = None  # "acme/app" or "https://github.com/acme/app" (.12)
    signer_workflow: NonEmpty | None = Field(default=None, alias="signerWorkflow")  # glob (.9)
    hosted_runners_only: bool = Field(default=False, alias="hostedRunnersOnly")  # (.11)


class AttestationRule(SignerSet):
    predicate_type: NonEmpty = Field(alias="predicateType")
    slsa: SlsaRequirements | None = None
    vsa: VsaRequirements | None = None
    layout: InTotoLayoutRequirement | None = None
    github: GitHubAttestation | None = None

    @model_validator(mode="after")
    def _checks_fit_type(self) -> AttestationRule:
        if self.slsa is not None and self.predicate_type not in (
            "https://slsa.dev/provenance/v1",
            "https://slsa.dev/provenance/v0.2",
        ):
            raise ValueError("slsa requirements need a SLSA provenance predicateType")
        if (
            self.vsa is not None
            and self.predicate_type != "https://slsa.dev/verification_summary/v1"
        ):
            raise ValueError(
                "vsa requirements need predicateType https://slsa.dev/verification_summary/v1"
            )
        return self


class ImageRule(_Model):
    match: list[NonEmpty] = Field(min_length=1)
    signatures: SignerSet | None = None
    signature_repository: NonEmpty | None = Field(default=None, alias="signatureRepository")
    attestations: list[AttestationRule] = Field(default_factory=list)
    exempt: NonEmpty | None = None

    @model_validator(mode="after")
    def _imposes_something(self) -> ImageRule:
        _exempt_or_checks(self.exempt, self.signatures is not None or bool(self.attestations))
        return self


class ImageField(_Model):
    api_version: NonEmpty = Field(alias="apiVersion")
    kind: NonEmpty
    paths: list[NonEmpty] = Field(min_length=1)

    @field_validator("paths")
    @classmethod
    def _paths_parse(cls, paths: list[str]) -> list[str]:
        from gate.manifests import parse_field_path

        for p in paths:
            parse_field_path(p)  # ValueError names the path and the position
        return paths


class RegistryConfig(_Model):
    host: NonEmpty
    credentials: NonEmpty | None = None
    insecure: bool = False


class VsaOutput(_Model):
    key: NonEmpty


class PublishOutput(_Model):
    """``gate publish``: the cosign key file that signs the published Flux artifact."""

    key: NonEmpty  # relative: beside the policy file; password from $GATE_PUBLISH_KEY_PASSWORD

    @field_validator("key")
    @classmethod
    def _key_is_a_file(cls, key: str) -> str:
        # A KMS URI or a URL would be read as a file name and fail late, after verifying.
        if "://" in key or key.strip() != key or key.endswith("/"):
            raise ValueError(
                f"publish.key {key!r} must be the path of a cosign key file "
                "(cosign generate-key-pair), not a URI or a directory"
            )
        return key


class Output(_Model):
    pin_digests: bool = Field(default=True, alias="pinDigests")
    vsa: VsaOutput | None = None
    publish: PublishOutput | None = None

    @model_validator(mode="after")
    def _publish_pins(self) -> Output:
        # Flux applies what is published: an artifact whose images are not pinned to the
        # digests the gate verified would let a moved tag deploy unverified code.
        if self.publish is not None and not self.pin_digests:
            raise ValueError("spec.output.publish needs pinDigests: true")
        return self


class Spec(_Model):
    mode: Literal["enforce", "audit"] = "enforce"
    keys: dict[str, Key] = Field(default_factory=dict)
    trust_roots: TrustRoots = Field(default_factory=TrustRoots, alias="trustRoots")
    source: Source = Field(default_factory=Source)
    charts: list[ChartRule] = Field(default_factory=list)
    images: list[ImageRule] = Field(default_factory=list)
    image_fields: list[ImageField] = Field(default_factory=list, alias="imageFields")
    #: An ``image:`` string no extractor claims (a custom resource not described in
    #: ``imageFields``): ``warn`` (default) reports it, ``deny`` blocks the run.
    unchecked_image_fields: Literal["warn", "deny"] = Field(
        default="warn", alias="uncheckedImageFields"
    )
    registries: list[RegistryConfig] = Field(default_factory=list)
    output: Output = Field(default_factory=Output)

    @field_validator("keys")
    @classmethod
    def _key_names(cls, keys: dict[str, Key]) -> dict[str, Key]:
        for name in keys:
            if not _NAME.fullmatch(name):
                raise ValueError(f"key name {name!r} must match {_NAME.pattern}")
        return keys

    @model_validator(mode="after")
    def _signers_exist(self) -> Spec:
        for where, signer_set in self.signer_sets():
            for name in signer_set.signers:
                if name not in self.keys:
                    known = ", ".join(sorted(self.keys)) or "none"
                    raise ValueError(f"{where}.signers names {name!r}, not in spec.keys ({known})")
        for i, r in enumerate(self.images):
            for j, a in enumerate(r.attestations):
                for name in a.layout.keys if a.layout is not None else []:
                    key = self.keys.get(name)
                    if key is None or key.public_key is None:
                        raise ValueError(
                            f"spec.images[{i}].attestations[{j}].layout.keys names {name!r}, "
                            "which is not a publicKey in spec.keys"
                        )
        hosts = [r.host for r in self.registries]
        if len(set(hosts)) != len(hosts):
            raise ValueError("spec.registries lists a host twice")
        return self

    def signer_sets(self) -> list[tuple[str, SignerSet]]:
        """Every signer list in the policy, with where it is (for messages)."""
        out: list[tuple[str, SignerSet]] = []
        if self.source.git is not None:
            out.append(("spec.source.git", self.source.git))
        for i, c in enumerate(self.charts):
            if c.provenance is not None:
                out.append((f"spec.charts[{i}].provenance", c.provenance))
            if c.signatures is not None:
                out.append((f"spec.charts[{i}].signatures", c.signatures))
        for i, r in enumerate(self.images):
            if r.signatures is not None:
                out.append((f"spec.images[{i}].signatures", r.signatures))
            for j, a in enumerate(r.attestations):
                out.append((f"spec.images[{i}].attestations[{j}]", a))
        return out


class Metadata(_Model):
    name: NonEmpty


class GatePolicy(_Model):
    api_version: Literal["gitops-gate.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["GatePolicy"]
    metadata: Metadata
    spec: Spec


def _exempt_or_checks(exempt: str | None, has_checks: bool) -> None:
    # A rule that neither checks nor says why it is exempt would pass silently.
    if exempt is not None and has_checks:
        raise ValueError("a rule is either 'exempt' (with a reason) or has checks, not both")
    if exempt is None and not has_checks:
        raise ValueError(
            "a rule must require signatures, provenance or attestations, or be 'exempt: <reason>'"
        )
