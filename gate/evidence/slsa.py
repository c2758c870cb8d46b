"""SLSA provenance (v1 and v0.2): the checks of slsa-verifier, and the certificate cross-check.

Pure: a parsed, signature-verified :class:`~gate.evidence.statement.Statement`,
the policy's :class:`~gate.policy.model.SlsaRequirements` and (for keyless
signers) the certificate's identity in; a :class:`Provenance` or a deny out.

The order and semantics follow slsa-verifier (``verifiers/internal/gha``:
``VerifyProvenance``, ``verifySourceURI``, ``VerifyBranch``, ``VerifyTag``,
``VerifyVersionedTag``; ``verifiers/utils``: ``TrustedBuilderID.MatchesLoose``,
``ValidateGitRef``, ``NormalizeGitURI``, ``source_tag.go``):

1. The builder that SIGNED (the certificate's build signer, a reusable
   workflow) is the one the policy trusts (``untrusted-builder``). A builder
   id given as ``…@vX.Y.Z`` equals ``…@refs/tags/vX.Y.Z``; without ``@`` only
   the name is compared (``MatchesLoose``). In the policy the name and the
   version are anchored globs.
2. The predicate's ``builder.id`` is the signer's identity
   (``builder-mismatch``): otherwise a trusted builder's certificate could
   vouch for provenance that names another builder. For a key signer (no
   certificate) the predicate's builder is what step 1 compares.
3. ``buildType`` is one the policy allows (``build-type-mismatch``).
4. The source: the trigger (v0.2 ``invocation.configSource.uri``; v1
   ``externalParameters.workflow``) and the first resolved dependency /
   material both name ``sourceUri``, and both carry the same ref
   (``source-mismatch``).
5. The ref: ``sourceBranch`` needs a branch build or a tag cut from that
   branch, ``sourceTag`` / ``sourceVersionedTag`` need a tag build
   (``invalid-ref`` when the build was from the other kind of ref), then the
   names are compared (``branch-mismatch``, ``tag-mismatch``,
   ``versioned-tag-mismatch``: a versioned tag matches on the parts given,
   ``v13.0`` matches ``v13.0.30``; ``v14.2.1`` does not match ``v14.2``).
6. Keyless only: the certificate's source repository (Fulcio ``.12``), ref
   (``.14``), commit (``.13``) and build config (``.18``) agree with the
   predicate (``certificate-predicate-mismatch``). The certificate is minted
   from GitHub's OIDC token, the predicate is written by the workflow: a
   workflow that lies about its source is caught here. ``gh attestation
   verify`` does not do this; slsa-verifier does it for untrusted builders.

Unknown predicate fields are ignored; a predicate lacking what a check needs
is ``malformed-statement``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gate.evidence.identity import CertificateIdentity
from gate.evidence.statement import (
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    AttestationError,
    Statement,
)
from gate.policy.glob import glob_match
from gate.policy.model import SlsaRequirements

GITHUB_WORKFLOW_BUILD_TYPES = frozenset(
    {
        "https://actions.github.io/buildtypes/workflow/v1",
        "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
    }
)
#: ``builder.id`` of GitHub artifact attestations: the runner, not the workflow.
GITHUB_RUNNER_PREFIX = "https://github.com/actions/runner/"
SLSA_GITHUB_GENERATOR = "https://github.com/slsa-framework/slsa-github-generator"
_GENERATOR_WORKFLOWS = f"{SLSA_GITHUB_GENERATOR}/.github/workflows/"

#: slsa-verifier's trusted GitHub builders and the buildTypes each may write.
TRUSTED_GITHUB_BUILDERS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        _GENERATOR_WORKFLOWS + "generator_generic_slsa3.yml": frozenset(
            {f"{SLSA_GITHUB_GENERATOR}/generic@v1", *GITHUB_WORKFLOW_BUILD_TYPES}
        ),
        _GENERATOR_WORKFLOWS + "builder_go_slsa3.yml": frozenset(
            {f"{SLSA_GITHUB_GENERATOR}/go@v1", *GITHUB_WORKFLOW_BUILD_TYPES}
        ),
        _GENERATOR_WORKFLOWS + "generator_container_slsa3.yml": frozenset(
            {f"{SLSA_GITHUB_GENERATOR}/container@v1", *GITHUB_WORKFLOW_BUILD_TYPES}
        ),
        _GENERATOR_WORKFLOWS + "builder_nodejs_slsa3.yml": frozenset(
            {"https://github.com/slsa-framework/slsa-github-generator/delegator-generic@v0"}
        ),
        _GENERATOR_WORKFLOWS + "builder_container-based_slsa3.yml": frozenset(
            {"https://slsa.dev/container-based-build/v0.1?draft"}
        ),
        _GENERATOR_WORKFLOWS + "delegator_generic_slsa3.yml": frozenset(
            {"https://github.com/slsa-framework/slsa-github-generator/delegator-generic@v0"}
        ),
        _GENERATOR_WORKFLOWS + "delegator_lowperms-generic_slsa3.yml": frozenset(
            {"https://github.com/slsa-framework/slsa-github-generator/delegator-generic@v0"}
        ),
    }
)


def _fail(reason: str, message: str, **kw: Any) -> AttestationError:
    return AttestationError(message, reason=reason, **kw)


# --- builder ids ---------------------------------------------------------------------------


def split_builder_id(builder_id: str) -> tuple[str, str]:
    """``name@version`` → (name, version); no ``@`` → (name, ""). Two ``@`` is malformed."""
    parts = builder_id.split("@")
    if len(parts) == 1:
        return parts[0], ""
    if len(parts) == 2 and parts[1]:
        return parts[0], parts[1]
    raise _fail("malformed-statement", f"the builder id {builder_id!r} is not name[@ref]")


def _as_ref(version: str) -> str:
    # `@v2.1.0` and `@refs/tags/v2.1.0` are the same builder (slsa-verifier allowRef).
    return version if version.startswith("refs/") else f"refs/tags/{version}"


def builder_id_matches(pattern: str, actual: str) -> bool:
    """The policy/CLI builder id (anchored glob over name and version) matches ``actual``.

    Without a version in ``pattern`` only the name is compared (``MatchesLoose``).
    """
    try:
        name, version = split_builder_id(actual)
    except AttestationError:
        return False
    pname, _, pversion = pattern.partition("@")
    if not glob_match(pname, name):
        return False
    if not pversion:
        return True
    if not version:
        return False
    return glob_match(pversion, version) or glob_match(_as_ref(pversion), _as_ref(version))


def _same_builder(a: str, b: str) -> bool:
    """Exact equality of two builder ids, modulo ``vX`` ≡ ``refs/tags/vX`` (``MatchesFull``)."""
    try:
        an, av = split_builder_id(a)
        bn, bv = split_builder_id(b)
    except AttestationError:
        return False
    return an == bn and (av == bv or (bool(av) and bool(bv) and _as_ref(av) == _as_ref(bv)))


_SEMVER = re.compile(
    r"v(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?)?)?"
)


def is_release_tag(ref: str) -> bool:
    """``refs/tags/vX.Y.Z`` without pre-release or build (``IsValidBuilderTag``)."""
    if not ref.startswith("refs/tags/"):
        return False
    m = _SEMVER.fullmatch(ref[len("refs/tags/") :])
    return m is not None and m.group(3) is not None and m.group(4) is None and m.group(5) is None


# --- semver, as golang.org/x/mod/semver --------------------------------------------------------


def semver_valid(v: str) -> bool:
    m = _SEMVER.fullmatch(v)
    if m is None:
        return False
    # Go's semver allows pre-release and build only on a full vX.Y.Z (regex enforces it),
    # and pre-release numeric identifiers have no leading zeros.
    if m.group(4):
        for ident in m.group(4).split("."):
            if ident.isdigit() and len(ident) > 1 and ident[0] == "0":
                return False
    return True


def semver_canonical(v: str) -> str:
    """``v1`` → ``v1.0.0``, ``v1.2`` → ``v1.2.0``; build metadata dropped; "" if invalid."""
    m = _SEMVER.fullmatch(v)
    if m is None or not semver_valid(v):
        return ""
    out = f"v{m.group(1)}.{m.group(2) or '0'}.{m.group(3) or '0'}"
    if m.group(4):
        out += f"-{m.group(4)}"
    return out


def _build_suffix(v: str) -> str:
    m = _SEMVER.fullmatch(v)
    return f"+{m.group(5)}" if m is not None and m.group(5) else ""


def versioned_tag_matches(provenance_tag: str, expected: str) -> tuple[bool, str]:
    """slsa-verifier ``VerifyVersionedTag``: compare the parts ``expected`` gives."""
    if not semver_valid(expected):
        return False, f"{expected!r} is not a semantic version (vMAJOR[.MINOR[.PATCH]])"
    canonical = semver_canonical(provenance_tag)
    if not canonical:
        return False, f"the build's tag {provenance_tag!r} is not a semantic version"
    exp_parts = expected.split(".")
    got_parts = canonical.split(".")
    if exp_parts[0] != got_parts[0]:
        return False, f"major version {exp_parts[0]!r} expected, got {got_parts[0]!r}"
    if len(exp_parts) > 1 and exp_parts[1] != got_parts[1]:
        return False, f"minor version {exp_parts[1]!r} expected, got {got_parts[1]!r}"
    if len(exp_parts) > 2:
        want = exp_parts[2].removesuffix(_build_suffix(expected))
        if want != got_parts[2]:
            return False, f"patch version {want!r} expected, got {got_parts[2]!r}"
    return True, ""


# --- reading the predicate ---------------------------------------------------------------------


def normalize_git_uri(uri: str) -> str:
    """``github.com/o/r`` → ``git+https://github.com/o/r`` (slsa-verifier ``NormalizeGitURI``)."""
    if uri.startswith("git+"):
        return uri
    if "://" not in uri:
        return f"git+https://{uri}"
    return f"git+{uri}"


def split_git_uri(uri: str) -> tuple[str, str]:
    """``git+https://h/o/r@refs/x`` → (``git+https://h/o/r``, ``refs/x``)."""
    base, _, ref = uri.partition("@")
    return base, ref


@dataclass(frozen=True)
class Provenance:
    """What the checks read from a v1 or v0.2 predicate (every field as signed)."""

    predicate_type: str
    builder_id: str
    build_type: str
    source_uri: str | None  # first resolved dependency / material, with @ref
    source_digest: Mapping[str, str] = field(default_factory=dict)
    trigger_uri: str | None = None  # git+<repo>@<ref>
    workflow: str | None = None  # https://github.com/o/r/<path>@<ref> (GitHub workflow builds)
    ref: str | None = None  # the git ref that triggered the build
    ref_type: str | None = None  # "branch" | "tag" | None (unknown)
    branch_of_tag: str | None = None  # for a tag build: the branch it was pushed from

    @property
    def builder_is_runner(self) -> bool:
        return self.builder_id.startswith(GITHUB_RUNNER_PREFIX)

    @property
    def builder_identity(self) -> str:
        """The builder a policy names: ``builder.id``, or the workflow for GitHub runners."""
        if self.builder_is_runner and self.workflow is not None:
            return self.workflow
        return self.builder_id


def _str(doc: Mapping[str, Any], key: str) -> str | None:
    v = doc.get(key)
    return v if isinstance(v, str) and v else None


def _obj(doc: Any, key: str) -> Mapping[str, Any]:
    v = doc.get(key) if isinstance(doc, Mapping) else None
    return v if isinstance(v, Mapping) else {}


def _digest(doc: Mapping[str, Any]) -> Mapping[str, str]:
    d = doc.get("digest")
    if not isinstance(d, Mapping):
        return {}
    return {k: v for k, v in d.items() if isinstance(k, str) and isinstance(v, str)}


def _key(name: str, upper: bool) -> str:
    # slsa-github-generator v1 writes the GitHub context in upper case.
    return name.upper() if upper else name


def _env_branch_for_tag(env: Mapping[str, Any], upper: bool) -> str:
    # slsaprovenance/common.go getBranchForTag: base_ref, else the push payload's
    # base_ref, else a release's target_commitish.
    def key(k: str) -> str:
        return _key(k, upper)

    base_ref = env.get(key("github_base_ref"))
    if isinstance(base_ref, str) and base_ref:
        return base_ref
    event = env.get(key("github_event_name"))
    payload = env.get(key("github_event_payload"))
    if not isinstance(payload, Mapping):
        return ""
    if event == "push":
        v = payload.get("base_ref")
        return v if isinstance(v, str) else ""
    if event == "release":
        release = payload.get("release")
        target = release.get("target_commitish") if isinstance(release, Mapping) else None
        return f"refs/heads/{target}" if isinstance(target, str) and target else ""
    return ""


def _env_refs(env: Mapping[str, Any], upper: bool) -> tuple[str | None, str | None, str | None]:
    ref = env.get(_key("github_ref", upper))
    ref_type = env.get(_key("github_ref_type", upper))
    if not isinstance(ref, str) or not isinstance(ref_type, str):
        return None, None, None
    branch = _env_branch_for_tag(env, upper) if ref_type == "tag" else None
    return ref, ref_type, branch


def _ref_type_of(ref: str | None) -> str | None:
    if ref is None:
        return None
    if ref.startswith("refs/tags/"):
        return "tag"
    if ref.startswith("refs/heads/"):
        return "branch"
    return "other"


def _parse_v02(p: Mapping[str, Any]) -> Provenance:
    builder_id = _str(_obj(p, "builder"), "id")
    build_type = _str(p, "buildType")
    if builder_id is None or build_type is None:
        raise _fail("malformed-statement", "the v0.2 provenance has no builder.id or buildType")
    materials = p.get("materials")
    first = materials[0] if isinstance(materials, list) and materials else None
    source = _str(first, "uri") if isinstance(first, Mapping) else None
    invocation = _obj(p, "invocation")
    trigger = _str(_obj(invocation, "configSource"), "uri")
    env = invocation.get("environment")
    ref = ref_type = branch = None
    if isinstance(env, Mapping):
        ref, ref_type, branch = _env_refs(env, upper=False)
        if ref is None:
            ref, ref_type, branch = _env_refs(env, upper=True)
    if ref is None and trigger is not None:
        ref = split_git_uri(trigger)[1] or None
        ref_type = _ref_type_of(ref)
    return Provenance(
        SLSA_PROVENANCE_V02,
        builder_id,
        build_type,
        source,
        MappingProxyType(dict(_digest(first))) if isinstance(first, Mapping) else {},
        trigger,
        None,
        ref,
        ref_type,
        branch,
    )


def _parse_v1(p: Mapping[str, Any]) -> Provenance:
    bd = _obj(p, "buildDefinition")
    builder_id = _str(_obj(_obj(p, "runDetails"), "builder"), "id")
    build_type = _str(bd, "buildType")
    if builder_id is None or build_type is None:
        raise _fail(
            "malformed-statement", "the v1 provenance has no runDetails.builder.id or buildType"
        )
    deps = bd.get("resolvedDependencies")
    first = deps[0] if isinstance(deps, list) and deps else None
    source = _str(first, "uri") if isinstance(first, Mapping) else None
    external = _obj(bd, "externalParameters")
    internal = _obj(bd, "internalParameters")
    trigger = workflow = ref = ref_type = branch = None
    wf = _obj(external, "workflow")
    repo, wf_ref, path = _str(wf, "repository"), _str(wf, "ref"), _str(wf, "path")
    if repo is not None and wf_ref is not None:
        # GitHub workflow buildType (github_attest.go TriggerURI).
        trigger = f"git+{repo}@{wf_ref}"
        ref, ref_type = wf_ref, _ref_type_of(wf_ref)
        if path is not None:
            workflow = f"{repo}/{path}@{wf_ref}"
    else:
        # slsa-github-generator v1 (builderTriggerInfo): GITHUB_WORKFLOW_REF = o/r/path@ref.
        wref = internal.get("GITHUB_WORKFLOW_REF")
        if isinstance(wref, str) and wref.count("@") == 1:
            repo_path, r = wref.split("@")
            parts = repo_path.split("/")
            if len(parts) >= 2:
                trigger = f"git+https://github.com/{'/'.join(parts[:2])}@{r}"
                workflow = f"https://github.com/{repo_path}@{r}"
                ref, ref_type = r, _ref_type_of(r)
    if isinstance(internal, Mapping):
        env_ref, env_type, env_branch = _env_refs(internal, upper=True)
        if env_ref is not None:
            ref, ref_type, branch = env_ref, env_type, env_branch
    return Provenance(
        SLSA_PROVENANCE_V1,
        builder_id,
        build_type,
        source,
        MappingProxyType(dict(_digest(first))) if isinstance(first, Mapping) else {},
        trigger,
        workflow,
        ref,
        ref_type,
        branch,
    )


def parse_provenance(statement: Statement) -> Provenance:
    """The SLSA fields of a v1 or v0.2 provenance statement."""
    if statement.predicate_type == SLSA_PROVENANCE_V1:
        return _parse_v1(statement.predicate)
    if statement.predicate_type == SLSA_PROVENANCE_V02:
        return _parse_v02(statement.predicate)
    raise _fail(
        "predicate-type-mismatch",
        "SLSA checks need a SLSA provenance predicate",
        found=repr(statement.predicate_type),
        expected=f"{SLSA_PROVENANCE_V1} or {SLSA_PROVENANCE_V02}",
    )


# --- the checks --------------------------------------------------------------------------------


def signing_builder(identity: CertificateIdentity) -> str:
    """The workflow that signed: Fulcio's build signer URI (``.9``), else the SAN."""
    return identity.claims.get("buildSignerURI") or identity.subject


def check_signing_builder(
    identity: CertificateIdentity,
    builder_id: str | None,
    *,
    trusted: Mapping[str, frozenset[str]] | None = None,
) -> str:
    """Step 1 for keyless signers: the certificate's workflow is a trusted builder.

    ``builder_id`` is the policy's (or ``--builder-id``); with ``trusted`` (the
    CLI's default builder list, slsa-verifier semantics) the builder must also
    be one of them at a release tag ``vX.Y.Z``.
    """
    signer = signing_builder(identity)
    name, version = split_builder_id(signer) if signer.count("@") <= 1 else (signer, "")
    if trusted is not None:
        if name not in trusted:
            raise _fail(
                "untrusted-builder",
                "the provenance was signed by a workflow that is not a trusted builder",
                found=signer,
                expected=" or ".join(sorted(trusted)),
            )
        if not is_release_tag(_as_ref(version) if version else ""):
            raise _fail(
                "untrusted-builder",
                "the trusted builder was not referenced at a release tag vX.Y.Z",
                found=signer,
                hint="a builder at a branch or commit is not a reviewed release",
            )
    if builder_id is not None and not builder_id_matches(builder_id, signer):
        raise _fail(
            "untrusted-builder",
            "the provenance was signed by a workflow the policy does not trust as a builder",
            found=signer,
            expected=builder_id,
        )
    return signer


def check_builder(
    prov: Provenance, builder_id: str | None, identity: CertificateIdentity | None
) -> None:
    """Step 2: the predicate's builder is the signer (keyless) or the policy's (key)."""
    if identity is not None:
        signer = signing_builder(identity)
        if not prov.builder_is_runner and not _same_builder(prov.builder_id, signer):
            raise _fail(
                "builder-mismatch",
                "the provenance names another builder than the certificate that signed it",
                found=f"builder.id {prov.builder_id}",
                expected=f"{signer} (the certificate's build signer)",
                hint="a trusted builder's signature over provenance claiming another builder",
            )
        return
    if builder_id is not None and not builder_id_matches(builder_id, prov.builder_identity):
        raise _fail(
            "builder-mismatch",
            "the provenance was built by a builder the policy does not name",
            found=prov.builder_identity,
            expected=builder_id,
        )


def check_build_type(prov: Provenance, allowed: Sequence[str] | frozenset[str] | None) -> None:
    """Step 3."""
    if allowed is not None and prov.build_type not in allowed:
        raise _fail(
            "build-type-mismatch",
            "the provenance has a buildType the policy does not allow",
            found=prov.build_type,
            expected=" or ".join(sorted(allowed)),
        )


def check_source(prov: Provenance, expected_uri: str) -> None:
    """Step 4 (``verifySourceURI``): trigger and first material name the source, same ref."""
    source = split_git_uri(normalize_git_uri(expected_uri))[0]
    if prov.trigger_uri is not None:
        trigger, trigger_ref = split_git_uri(prov.trigger_uri)
        if trigger != source:
            raise _fail(
                "source-mismatch",
                "the build was triggered from another repository",
                found=prov.trigger_uri,
                expected=source,
            )
        if not trigger_ref:
            raise _fail("malformed-statement", f"the trigger URI has no ref: {prov.trigger_uri}")
    if prov.source_uri is None:
        raise _fail(
            "malformed-statement",
            "the provenance has no resolved dependency / material naming its source",
        )
    material, material_ref = split_git_uri(prov.source_uri)
    if material != source:
        raise _fail(
            "source-mismatch",
            "the provenance's source (first resolved dependency) is another repository",
            found=prov.source_uri,
            expected=source,
        )
    if not material_ref:
        raise _fail("malformed-statement", f"the source URI has no ref: {prov.source_uri}")
    if prov.trigger_uri is not None and prov.trigger_uri != prov.source_uri:
        raise _fail(
            "source-mismatch",
            "the provenance's trigger and source disagree",
            found=f"trigger {prov.trigger_uri}, source {prov.source_uri}",
        )


def _ref_name(ref: str | None, kind: str) -> str:
    # utils.ValidateGitRef: refs/<kind>/<name> with a non-empty name, else ErrorInvalidRef.
    prefix = f"refs/{kind}/"
    if ref is None or not ref.startswith(prefix) or len(ref) == len(prefix):
        want = "a branch" if kind == "heads" else "a tag"
        raise _fail(
            "invalid-ref",
            f"the policy asks for {want}, but the build was not from {want}",
            found=repr(ref or ""),
            expected=f"{prefix}<name>",
        )
    return ref[len(prefix) :]


def build_tag(prov: Provenance) -> str | None:
    return prov.ref if prov.ref_type == "tag" else None


def build_branch(prov: Provenance) -> str | None:
    if prov.ref_type == "branch":
        return prov.ref
    if prov.ref_type == "tag":
        return prov.branch_of_tag or None
    return None


def check_refs(prov: Provenance, req: SlsaRequirements) -> None:
    """Step 5 (``VerifyBranch``, ``VerifyTag``, ``VerifyVersionedTag``, and ``sourceRef``)."""
    if req.source_ref is not None and (
        prov.ref is None or not glob_match(req.source_ref, prov.ref)
    ):
        kind = req.source_ref.split("/")[1] if req.source_ref.startswith("refs/") else ""
        reason = {"tags": "tag-mismatch", "heads": "branch-mismatch"}.get(kind, "invalid-ref")
        raise _fail(
            reason,
            "the build was from another git ref",
            found=repr(prov.ref),
            expected=req.source_ref,
        )
    if req.source_branch is not None:
        branch = _ref_name(build_branch(prov), "heads")
        if not glob_match(req.source_branch, branch):
            raise _fail(
                "branch-mismatch",
                "the build was from another branch",
                found=branch,
                expected=req.source_branch,
            )
    if req.source_tag is not None:
        tag = _ref_name(build_tag(prov), "tags")
        if not glob_match(req.source_tag, tag):
            raise _fail(
                "tag-mismatch", "the build was from another tag", found=tag, expected=req.source_tag
            )
    if req.source_versioned_tag is not None:
        tag = _ref_name(build_tag(prov), "tags")
        ok, why = versioned_tag_matches(tag, req.source_versioned_tag)
        if not ok:
            raise _fail(
                "versioned-tag-mismatch",
                f"the build's tag does not match the versioned tag: {why}",
                found=tag,
                expected=req.source_versioned_tag,
            )


def _repo_of(uri: str | None) -> str | None:
    if uri is None:
        return None
    base = split_git_uri(uri)[0]
    return base.removeprefix("git+").removesuffix(".git")


def check_certificate(prov: Provenance, identity: CertificateIdentity) -> None:
    """Step 6: the certificate's GitHub claims agree with the predicate.

    Skipped claim by claim where the certificate does not carry it (non-GitHub
    issuers); every claim it carries must agree.
    """
    claims = identity.claims
    problems: list[str] = []
    cert_repo = claims.get("sourceRepositoryURI")
    pred_repo = _repo_of(prov.source_uri) or _repo_of(prov.trigger_uri)
    if cert_repo is not None and pred_repo is not None and cert_repo != pred_repo:
        problems.append(f"source repository: certificate {cert_repo}, predicate {pred_repo}")
    cert_ref = claims.get("sourceRepositoryRef")
    pred_ref = prov.ref or (split_git_uri(prov.source_uri)[1] if prov.source_uri else None)
    if cert_ref is not None and pred_ref and cert_ref != pred_ref:
        problems.append(f"source ref: certificate {cert_ref}, predicate {pred_ref}")
    cert_sha = claims.get("sourceRepositoryDigest")
    pred_sha = prov.source_digest.get("gitCommit") or prov.source_digest.get("sha1")
    if cert_sha is not None and pred_sha is not None and cert_sha != pred_sha:
        problems.append(f"source commit: certificate {cert_sha}, predicate {pred_sha}")
    cert_config = claims.get("buildConfigURI")
    if cert_config is not None and prov.workflow is not None and cert_config != prov.workflow:
        problems.append(f"workflow: certificate {cert_config}, predicate {prov.workflow}")
    if prov.builder_is_runner:
        runner = prov.builder_id.removeprefix(GITHUB_RUNNER_PREFIX)
        cert_runner = claims.get("runnerEnvironment")
        if cert_runner is not None and runner != cert_runner:
            problems.append(f"runner: certificate {cert_runner}, predicate {runner}")
    if problems:
        raise _fail(
            "certificate-predicate-mismatch",
            "the provenance disagrees with the certificate that signed it",
            found="; ".join(problems),
            hint="the workflow wrote provenance about another source than GitHub's OIDC token "
            "says it ran from",
        )


def verify_provenance(
    statement: Statement,
    req: SlsaRequirements,
    identity: CertificateIdentity | None = None,
    *,
    trusted_builders: Mapping[str, frozenset[str]] | None = None,
) -> Provenance:
    """Steps 1-6, in slsa-verifier's order; the parsed provenance, or a deny."""
    prov = parse_provenance(statement)
    if identity is not None:
        check_signing_builder(identity, req.builder_id, trusted=trusted_builders)
    check_builder(prov, req.builder_id, identity)
    allowed: Sequence[str] | frozenset[str] | None = req.build_types
    if allowed is None and trusted_builders is not None and identity is not None:
        allowed = trusted_builders.get(split_builder_id(signing_builder(identity))[0])
    check_build_type(prov, allowed)
    if req.source_uri is not None:
        check_source(prov, req.source_uri)
    check_refs(prov, req)
    if identity is not None:
        check_certificate(prov, identity)
    return prov


__all__ = [
    "GITHUB_WORKFLOW_BUILD_TYPES",
    "TRUSTED_GITHUB_BUILDERS",
    "Provenance",
    "builder_id_matches",
    "check_build_type",
    "check_builder",
    "check_certificate",
    "check_refs",
    "check_signing_builder",
    "check_source",
    "is_release_tag",
    "normalize_git_uri",
    "parse_provenance",
    "semver_canonical",
    "verify_provenance",
    "versioned_tag_matches",
]
