"""Attestations for tests: in-toto statements, SLSA provenance, VSAs, in-toto layouts.

Everything here builds plain dicts (the JSON a producer would emit) so that a
test can change any field before signing it; signing is a separate step:
:func:`sign_statement` with a key (``gate.signing``), or
:func:`sign_statement_keyless` through the private Sigstore authority.

The shapes follow what the real producers emit: GitHub artifact attestations
(``actions/attest-build-provenance``) for SLSA v1 and slsa-github-generator
for SLSA v0.2 wrapped in an in-toto v0.1 statement.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from gate.signing import IN_TOTO_PAYLOAD_TYPE, Envelope, KeyKind, KeyPair, Signer, sign_envelope

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
VSA_V1 = "https://slsa.dev/verification_summary/v1"

# buildTypes of GitHub-hosted builds.
GITHUB_WORKFLOW_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
GITHUB_WORKFLOW_BUILD_TYPE_OLD = (
    "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
)
SLSA_GENERIC_BUILD_TYPE_V02 = "https://github.com/slsa-framework/slsa-github-generator/generic@v1"

GITHUB_HOSTED_RUNNER = "https://github.com/actions/runner/github-hosted"
SLSA_GENERIC_GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/"
    ".github/workflows/generator_generic_slsa3.yml"
)
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"

StatementVersion = Literal["v1", "v0.1"]


# --- in-toto statements --------------------------------------------------------


def subject(name: str, digest: str | Mapping[str, str]) -> dict[str, Any]:
    """One statement subject; ``digest`` as ``"sha256:<hex>"`` or ``{"sha256": hex}``."""
    if isinstance(digest, str):
        algorithm, _, value = digest.partition(":")
        if not value:
            raise ValueError(f"digest {digest!r} is not 'algorithm:hex'")
        digests = {algorithm: value}
    else:
        digests = dict(digest)
    return {"name": name, "digest": digests}


def statement(
    subjects: Sequence[Mapping[str, Any]],
    predicate_type: str,
    predicate: Mapping[str, Any],
    *,
    version: StatementVersion = "v1",
) -> dict[str, Any]:
    """An in-toto Statement (v1, or v0.1 as slsa-github-generator still writes)."""
    return {
        "_type": STATEMENT_V1 if version == "v1" else STATEMENT_V01,
        "subject": [dict(s) for s in subjects],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def statement_bytes(stmt: Mapping[str, Any]) -> bytes:
    """Compact JSON, key order kept, as producers serialise the DSSE payload."""
    return json.dumps(stmt, separators=(",", ":")).encode()


def sign_statement(stmt: Mapping[str, Any] | bytes, signer: Signer, *, keyid: str = "") -> Envelope:
    """A DSSE envelope over the statement, signed with a key (keyid ``""`` like cosign)."""
    payload = stmt if isinstance(stmt, bytes) else statement_bytes(stmt)
    return sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, signer, keyid=keyid)


def sign_statement_keyless(
    stmt: Mapping[str, Any] | bytes,
    authority: Any,
    **identity: Any,
) -> dict[str, Any]:
    """A Sigstore bundle v0.3 over the statement from the private authority.

    ``identity`` is passed through to the authority's ``sign_dsse`` (e.g.
    ``identity=``, ``issuer=``, ``github=``).
    """
    payload = stmt if isinstance(stmt, bytes) else statement_bytes(stmt)
    bundle: dict[str, Any] = authority.sign_dsse(payload, IN_TOTO_PAYLOAD_TYPE, **identity)
    return bundle


# --- SLSA provenance -----------------------------------------------------------


@dataclass(frozen=True)
class GitHubBuild:
    """One GitHub Actions run, the facts every provenance shape is built from.

    Tests change single fields (``dataclasses.replace``) to produce the
    mismatches a verifier must catch: another builder, another source, a
    branch instead of a tag, an unexpected buildType.
    """

    repository: str = "acme/app"  # owner/name
    ref: str = "refs/tags/v1.4.0"
    commit: str = "4d329c75e7ec1725f7c9ce917a8799d408d06be3"
    workflow_path: str = ".github/workflows/release.yml"
    event_name: str = "push"
    run_id: str = "9228858953"
    run_attempt: str = "1"
    repository_id: str = "804070735"
    owner_id: str = "16248153"
    server: str = "https://github.com"
    #: ``runDetails.builder.id`` (v1) / ``builder.id`` (v0.2). ``None``: the
    #: producer's default (the workflow itself for reusable-workflow builders).
    builder_id: str | None = None
    build_type: str = GITHUB_WORKFLOW_BUILD_TYPE
    #: Override the first resolved dependency / material URI (default
    #: ``git+https://github.com/<repository>@<ref>``).
    source_uri: str | None = None
    #: Override the trigger repository (v1 ``externalParameters.workflow.repository``,
    #: v0.2 ``invocation.configSource.uri`` without the ref).
    trigger_repository: str | None = None

    @property
    def repository_uri(self) -> str:
        return f"{self.server}/{self.repository}"

    @property
    def git_uri(self) -> str:
        """``git+https://github.com/org/repo``: what a policy's ``sourceUri`` names."""
        return f"git+{self.repository_uri}"

    @property
    def workflow_identity(self) -> str:
        """The certificate SAN of this run: ``https://github.com/org/repo/<path>@<ref>``."""
        return f"{self.repository_uri}/{self.workflow_path}@{self.ref}"

    @property
    def invocation_id(self) -> str:
        return f"{self.repository_uri}/actions/runs/{self.run_id}/attempts/{self.run_attempt}"

    def material_uri(self) -> str:
        return self.source_uri or f"{self.git_uri}@{self.ref}"


def slsa_provenance_v1(build: GitHubBuild = GitHubBuild()) -> dict[str, Any]:
    """SLSA v1 provenance predicate as a GitHub workflow build writes it."""
    trigger_repo = build.trigger_repository or build.repository_uri
    return {
        "buildDefinition": {
            "buildType": build.build_type,
            "externalParameters": {
                "workflow": {
                    "ref": build.ref,
                    "repository": trigger_repo,
                    "path": build.workflow_path,
                }
            },
            "internalParameters": {
                "github": {
                    "event_name": build.event_name,
                    "repository_id": build.repository_id,
                    "repository_owner_id": build.owner_id,
                    "runner_environment": "github-hosted",
                }
            },
            "resolvedDependencies": [
                {"uri": build.material_uri(), "digest": {"gitCommit": build.commit}}
            ],
        },
        "runDetails": {
            "builder": {"id": build.builder_id or GITHUB_HOSTED_RUNNER},
            "metadata": {"invocationId": build.invocation_id},
        },
    }


def slsa_provenance_v02(build: GitHubBuild = GitHubBuild()) -> dict[str, Any]:
    """SLSA v0.2 provenance predicate as slsa-github-generator's generic builder writes it."""
    trigger_repo = build.trigger_repository or build.repository_uri
    build_type = (
        SLSA_GENERIC_BUILD_TYPE_V02
        if build.build_type == GITHUB_WORKFLOW_BUILD_TYPE
        else build.build_type
    )
    return {
        "builder": {"id": build.builder_id or f"{SLSA_GENERIC_GENERATOR}@refs/tags/v2.1.0"},
        "buildType": build_type,
        "invocation": {
            "configSource": {
                "uri": f"git+{trigger_repo}@{build.ref}",
                "digest": {"sha1": build.commit},
                "entryPoint": build.workflow_path,
            },
            "parameters": {},
            "environment": {
                "github_event_name": build.event_name,
                "github_ref": build.ref,
                "github_ref_type": "tag" if build.ref.startswith("refs/tags/") else "branch",
                "github_repository_id": build.repository_id,
                "github_repository_owner_id": build.owner_id,
                "github_run_attempt": build.run_attempt,
                "github_run_id": build.run_id,
                "github_sha1": build.commit,
            },
        },
        "metadata": {
            "buildInvocationID": f"{build.run_id}-{build.run_attempt}",
            "completeness": {"parameters": True, "environment": False, "materials": False},
            "reproducible": False,
        },
        "materials": [{"uri": build.material_uri(), "digest": {"sha1": build.commit}}],
    }


def provenance_statement(
    subjects: Sequence[Mapping[str, Any]],
    build: GitHubBuild = GitHubBuild(),
    *,
    slsa_version: Literal["v1", "v0.2"] = "v1",
    statement_version: StatementVersion | None = None,
) -> dict[str, Any]:
    """A complete provenance statement; v0.2 defaults to a v0.1 statement, as produced."""
    if slsa_version == "v1":
        return statement(
            subjects,
            SLSA_PROVENANCE_V1,
            slsa_provenance_v1(build),
            version=statement_version or "v1",
        )
    return statement(
        subjects,
        SLSA_PROVENANCE_V02,
        slsa_provenance_v02(build),
        version=statement_version or "v0.1",
    )


# --- Verification Summary Attestations --------------------------------------------


def vsa_v1(
    *,
    verifier_id: str = "https://gitops-gate.dev/verifier",
    resource_uri: str,
    policy_uri: str = "https://gitops-gate.dev/policy/production",
    policy_digest: Mapping[str, str] | None = None,
    input_attestations: Iterable[Mapping[str, Any]] = (),
    result: Literal["PASSED", "FAILED"] = "PASSED",
    verified_levels: Sequence[str] = ("SLSA_BUILD_LEVEL_3",),
    time_verified: datetime | None = None,
    dependency_levels: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A SLSA Verification Summary v1 predicate."""
    when = (time_verified or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    predicate: dict[str, Any] = {
        "verifier": {"id": verifier_id},
        "timeVerified": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resourceUri": resource_uri,
        "policy": {"uri": policy_uri},
        "inputAttestations": [dict(a) for a in input_attestations],
        "verificationResult": result,
        "verifiedLevels": list(verified_levels),
        "slsaVersion": "1.0",
    }
    if policy_digest is not None:
        predicate["policy"]["digest"] = dict(policy_digest)
    if dependency_levels is not None:
        predicate["dependencyLevels"] = dict(dependency_levels)
    return predicate


def vsa_statement(subjects: Sequence[Mapping[str, Any]], **kwargs: Any) -> dict[str, Any]:
    return statement(subjects, VSA_V1, vsa_v1(**kwargs))


# --- in-toto layouts and links (in-toto 3.1, classic Metablock format) ------------

_SSLIB_SCHEMES = {
    KeyKind.ECDSA_P256: "ecdsa-sha2-nistp256",
    KeyKind.ECDSA_P384: "ecdsa-sha2-nistp384",
    KeyKind.ED25519: "ed25519",
    KeyKind.RSA: "rsa-pkcs1v15-sha256",  # the padding gate.signing uses for RSA
}


def sslib_key(pair: KeyPair) -> Any:
    """The securesystemslib public key (``SSlibKey``) of a gate.signing key pair."""
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    from gate.signing import key_kind

    return SSlibKey.from_crypto(pair.public_key, scheme=_SSLIB_SCHEMES[key_kind(pair.private_key)])


def sslib_signer(pair: KeyPair) -> Any:
    """A securesystemslib ``CryptoSigner`` over a gate.signing key pair."""
    from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

    return CryptoSigner(pair.private_key, sslib_key(pair))


def in_toto_key_dict(pair: KeyPair) -> dict[str, Any]:
    """The legacy key dict (with ``keyid``) that in-toto layouts and in_toto_verify use."""
    key = sslib_key(pair)
    doc: dict[str, Any] = key.to_dict()
    doc["keyid"] = key.keyid
    return doc


def _sha256(data: bytes) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest()}


def _tar_gz(files: Mapping[str, bytes]) -> bytes:
    """A reproducible .tar.gz (fixed mtime, owner, order)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


@dataclass
class InTotoChain:
    """A signed layout, its links and the final product, written to ``directory``."""

    directory: Path
    layout: Any  # in_toto.models.metadata.Metablock
    layout_path: Path
    layout_key_dict: dict[str, dict[str, Any]]  # argument for in_toto_verify
    links: dict[str, Any] = field(default_factory=dict)  # step name -> Metablock
    link_paths: dict[str, Path] = field(default_factory=dict)
    product: Path | None = None


def make_link(
    name: str,
    functionary: KeyPair,
    *,
    materials: Mapping[str, bytes] = {},
    products: Mapping[str, bytes] = {},
    command: Sequence[str] = (),
) -> Any:
    """A signed in-toto link Metablock recording ``materials`` → ``products``."""
    from in_toto.models.link import Link
    from in_toto.models.metadata import Metablock

    link = Link(
        name=name,
        materials={k: _sha256(v) for k, v in materials.items()},
        products={k: _sha256(v) for k, v in products.items()},
        command=list(command),
        byproducts={"return-value": 0, "stderr": "", "stdout": ""},
        environment={},
    )
    block = Metablock(signed=link)
    block.create_signature(sslib_signer(functionary))
    return block


def make_in_toto_chain(
    directory: Path,
    *,
    owner: KeyPair,
    coder: KeyPair,
    packager: KeyPair,
    source: bytes = b"print('hello')\n",
    inspections: bool = False,
    expires: datetime | None = None,
    tamper_product: bool = False,
) -> InTotoChain:
    """The in-toto demo supply chain (write-code → package), minted from scratch.

    Two steps, each performed by its own functionary key; the layout is signed
    by ``owner``. With ``inspections`` the layout also carries an ``untar``
    inspection that runs ``tar xzf foo.tar.gz`` in the verifier's working
    directory: exactly what a gate must refuse unless its policy allows it.
    ``tamper_product`` rewrites ``foo.tar.gz`` after the links were signed.
    """
    from in_toto.models.layout import Inspection, Layout, Step
    from in_toto.models.metadata import Metablock

    directory.mkdir(parents=True, exist_ok=True)
    archive = _tar_gz({"foo.py": source})

    coder_key, packager_key = in_toto_key_dict(coder), in_toto_key_dict(packager)
    layout = Layout()
    layout.add_functionary_key(coder_key)
    layout.add_functionary_key(packager_key)
    layout.expires = (
        (expires or datetime.now(UTC) + timedelta(days=30))
        .astimezone(UTC)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    write_code = Step(name="write-code")
    write_code.pubkeys = [coder_key["keyid"]]
    write_code.expected_products = [["CREATE", "foo.py"], ["DISALLOW", "*"]]
    package = Step(name="package")
    package.pubkeys = [packager_key["keyid"]]
    package.expected_command = ["tar", "zcvf", "foo.tar.gz", "foo.py"]
    package.expected_materials = [
        ["MATCH", "foo.py", "WITH", "PRODUCTS", "FROM", "write-code"],
        ["DISALLOW", "*"],
    ]
    package.expected_products = [["CREATE", "foo.tar.gz"], ["ALLOW", "foo.py"], ["DISALLOW", "*"]]
    layout.steps = [write_code, package]
    if inspections:
        untar = Inspection(name="untar")
        untar.run = ["tar", "xzf", "foo.tar.gz"]
        untar.expected_materials = [
            # A MATCH that fails only leaves the artifact unconsumed: the
            # DISALLOW after it is what turns a changed archive into a failure.
            ["MATCH", "foo.tar.gz", "WITH", "PRODUCTS", "FROM", "package"],
            ["DISALLOW", "foo.tar.gz"],
            ["ALLOW", "*"],
        ]
        untar.expected_products = [
            ["MATCH", "foo.py", "WITH", "PRODUCTS", "FROM", "write-code"],
            ["DISALLOW", "foo.py"],
            ["ALLOW", "*"],
        ]
        layout.inspect = [untar]
    layout.validate()
    layout_block = Metablock(signed=layout)
    layout_block.create_signature(sslib_signer(owner))
    layout_path = directory / "root.layout"
    layout_block.dump(str(layout_path))

    links = {
        "write-code": make_link("write-code", coder, products={"foo.py": source}),
        "package": make_link(
            "package",
            packager,
            materials={"foo.py": source},
            products={"foo.tar.gz": archive, "foo.py": source},
            command=["tar", "zcvf", "foo.tar.gz", "foo.py"],
        ),
    }
    link_paths: dict[str, Path] = {}
    for (name, block), key in zip(links.items(), (coder_key, packager_key), strict=True):
        path = directory / f"{name}.{key['keyid'][:8]}.link"
        block.dump(str(path))
        link_paths[name] = path

    product = directory / "foo.tar.gz"
    product.write_bytes(archive + (b"\0" if tamper_product else b""))
    owner_key = in_toto_key_dict(owner)
    return InTotoChain(
        directory=directory,
        layout=layout_block,
        layout_path=layout_path,
        layout_key_dict={owner_key["keyid"]: owner_key},
        links=links,
        link_paths=link_paths,
        product=product,
    )
