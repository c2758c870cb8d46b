"""The engine's Git source verifier (``spec.source.git``): signatures, tags, tree binding.

Checks, each reported as a finding (``check`` / ``reason``):

- ``git.metadata``: a ``.git`` at or above the source (``git-metadata-missing``);
- ``git.revision``: the revision asked for (``--revision``, ``ARGOCD_APP_REVISION``)
  is HEAD, the commit whose files are on disk (``revision-not-head``);
- ``git.tag-signature``: in ``tag`` mode HEAD carries an annotated, signed release tag
  whose object names itself as the ref it was found under (``no-release-tag``,
  ``tag-not-at-head``, ``lightweight-tag``, ``tag-name-mismatch``, ``unsigned``,
  ``untrusted-signer``, ``bad-signature``, ``key-expired``, ...); when Argo CD targets
  a tag, that tag and no other is the one that must verify;
- ``git.commit-signature``: in ``commit`` mode HEAD itself is signed;
- ``git.signers``: distinct policy keys across the applicable signatures reach the
  threshold (``threshold-not-met``);
- ``git.tree``: the files on disk are exactly the signed commit's tree
  (``tree-mismatch``, with the paths);
- ``git.rollback`` (``spec.source.git.rollback``, ADR 12): HEAD is the application's last
  allowed commit or descends from it (``descendant``), or the release tag's version is not
  lower than the last allowed one (``version``); reasons ``rollback``,
  ``rollback-unverifiable`` (the last allowed commit is not in this ``.git``: shallow
  clone or rewritten history), ``version-unparsable``, ``state-unavailable`` (exit 3).
  The state is read before any signature is checked and advanced only after the engine's
  final decision is allow (``Context.on_allow``), never in audit mode.

Each tag and commit signature that verified is recorded for the VSA's
``inputAttestations`` (:func:`_record_input`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from gate.errors import GateError, MissingEvidenceError, SourceError, VerificationError
from gate.evidence.git import (
    GitSignature,
    MalformedObjectError,
    VerifiedSigner,
    distinct_signers,
    is_release_tag,
    parse_commit,
    parse_tag,
)
from gate.evidence.gitsign import verify_keyless
from gate.evidence.sigtools import (
    PgpKeyring,
    SshTrustedKey,
    SshVerifier,
    UntrustedSignerError,
)
from gate.policy.loader import LoadedPolicy
from gate.policy.model import GitRollback, GitSource, KeylessIdentity, Spec
from gate.sources.git import (
    GitCheckout,
    GitMetadataMissingError,
    TagRef,
    compare_tree,
    worktree_files,
)
from gate.sources.trustroot import TrustRoot, load_trust_root, policy_trust_root_path
from gate.state import AllowedRevision, ReleaseVersion, RollbackState, StateError

if TYPE_CHECKING:  # pragma: no cover - typing only; gate.engine imports this module
    from gate.engine import Context, SourceInfo

_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
MAX_LISTED = 10
#: Commits between the last allowed revision and HEAD that the rollback check reads and
#: re-hashes; a longer path cannot be proven here (``rollback-unverifiable``).
MAX_ANCESTRY_COMMITS = 50_000


class TagError(VerificationError):
    """A release tag that does not count, with its reason."""


def _record_input(ctx: Context, checkout: GitCheckout, rev: str, raw: bytes) -> None:
    """A verified tag or commit for the VSA's ``inputAttestations``.

    URI ``git+<repo>@<rev>`` (``rev``: ``refs/tags/<name>`` or the commit id), the
    repository as the caller names it, else the checkout's ``file://`` URI. Digest: the
    SHA-256 of the raw signed object (``git cat-file <type> <rev>``: the signed payload
    with its signature), so a consumer checks ``git cat-file tag refs/tags/v1 | sha256sum``
    in either object format. Not ``{"sha1"|"sha256": <object id>}``: an object id hashes
    ``"<type> <size>\\0" + content``, so it is not the sha256/sha1 of any bytes a consumer
    can fetch (in-toto's DigestSet names it ``gitCommit``/``gitTag``), and the VSA writer
    keeps SHA-256 digests only (a SHA-1 id would vanish, and SHA-1 is not collision-safe).
    """
    repo = ctx.request.source.repo
    if repo:
        base = repo if repo.startswith("git+") else f"git+{repo}"
    else:
        base = f"git+{checkout.root.resolve().as_uri()}"
    ctx.findings.verified_input(f"{base}@{rev}", "sha256:" + hashlib.sha256(raw).hexdigest())


@dataclass
class SignatureChecker:
    """Verifies one Git signature against the policy keys named in ``signers``.

    The PGP keyring and the Sigstore trust root are loaded on first use only, so a
    policy of SSH keys never starts gpg nor reads a trust root.
    """

    spec: Spec
    signers: tuple[str, ...]
    now: dt.datetime
    trust_root_path: Path | None = None
    load_trust_root: Callable[[Path | None], TrustRoot] = load_trust_root
    _stack: ExitStack = field(default_factory=ExitStack)
    _pgp: PgpKeyring | None = None
    _trust_root: TrustRoot | None = None

    def __enter__(self) -> SignatureChecker:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def _keys(self, kind: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self.signers:
            key = self.spec.keys[name]
            if kind == "pgp" and key.pgp is not None:
                out[name] = key.pgp
            elif kind == "ssh" and key.ssh is not None:
                out[name] = key.ssh
        return out

    def _identities(self) -> dict[str, KeylessIdentity]:
        return {n: k.keyless for n in self.signers if (k := self.spec.keys[n]).keyless is not None}

    def _no_keys(self, kind: str, sig: GitSignature) -> UntrustedSignerError:
        have = ", ".join(f"{n} ({self.spec.keys[n].kind})" for n in self.signers)
        return UntrustedSignerError(
            f"the signature is {kind}, and spec.source.git.signers has no {kind} key",
            found=f"a {sig.kind} signature",
            expected=have,
        )

    def verify(self, payload: bytes, sig: GitSignature, where: str) -> VerifiedSigner:
        now = self.now
        if sig.kind == "ssh":
            keys = self._keys("ssh")
            if not keys:
                raise self._no_keys("SSH", sig)
            verifier = SshVerifier([SshTrustedKey(n, line) for n, line in sorted(keys.items())])
            ssh = verifier.verify(payload, sig.armored, now)
            return VerifiedSigner(ssh.fingerprint, ssh.key_names, where)
        if sig.kind == "pgp":
            keys = self._keys("pgp")
            if not keys:
                raise self._no_keys("PGP", sig)
            if self._pgp is None:
                self._pgp = self._stack.enter_context(PgpKeyring(keys, now))
            pgp = self._pgp.verify(payload, sig.armored)
            return VerifiedSigner(pgp.primary_fingerprint, pgp.key_names, where)
        identities = self._identities()
        if not identities:
            raise self._no_keys("keyless (X.509)", sig)
        if self._trust_root is None:
            self._trust_root = self.load_trust_root(self.trust_root_path)
        keyless = verify_keyless(payload, sig.armored, self._trust_root, identities, now)
        return VerifiedSigner(keyless.identity, keyless.key_names, where)


@dataclass
class GitSourceVerifier:
    """``SourceVerifier`` for ``spec.source.git``."""

    load_trust_root: Callable[[Path | None], TrustRoot] = load_trust_root

    def verify_source(self, ctx: Context) -> None:
        cfg = ctx.policy.policy.spec.source.git
        if cfg is None:
            return
        f = ctx.findings
        source = ctx.request.source
        try:
            checkout = GitCheckout.open(source.path, source.app_path)
            head = checkout.head()
        except GitMetadataMissingError as e:
            f.error("git.metadata", str(source.path), e)
            return
        # Rollback state: read BEFORE any verification, so that what this run compares
        # against is what was allowed before it started.
        rollback: _Rollback | None = None
        if cfg.rollback is not None:
            rollback = _Rollback.read(ctx, cfg.rollback, checkout)
        if not self._revision_is_head(ctx, checkout, head):
            return  # the files on disk are not the revision asked for: nothing to bind
        spec = ctx.policy.policy.spec
        signers: list[VerifiedSigner] = []
        verified_tags: list[str] = []
        complete = True
        with SignatureChecker(
            spec,
            tuple(cfg.signers),
            ctx.now,
            policy_trust_root_path(ctx.policy),
            self.load_trust_root,
        ) as checker:
            if cfg.require in ("tag", "tag-and-commit"):
                complete &= self._tags(ctx, cfg, checkout, head, checker, signers, verified_tags)
            if cfg.require in ("commit", "tag-and-commit"):
                complete &= self._commit(ctx, checkout, head, checker, signers)
        if complete:
            self._threshold(ctx, cfg, head, signers)
        self._tree(ctx, checkout, head)
        if rollback is not None:
            rollback.check(ctx, checkout, head, verified_tags)

    # -- revision --------------------------------------------------------------------

    def _revision_is_head(self, ctx: Context, checkout: GitCheckout, head: str) -> bool:
        rev = ctx.request.source.revision
        if rev is None or rev == "HEAD":
            return True
        resolved = checkout.resolve_commit(rev)
        if resolved == head:
            return True
        ctx.findings.failed(
            "git.revision",
            rev,
            "revision-not-head",
            f"the revision to verify is not the checked-out commit (HEAD)\n"
            f"  found:    HEAD = {head}\n"
            f"  expected: {rev}"
            + ("" if resolved else " (not in this repository's .git)")
            + "\n  to fix:   verify the revision that is checked out; in Argo CD, "
            "ARGOCD_APP_REVISION must be the commit the plugin received",
        )
        return False

    # -- tags ------------------------------------------------------------------------

    def _target_tag(
        self, ctx: Context, checkout: GitCheckout, refs: Mapping[str, TagRef]
    ) -> str | None:
        """The tag Argo CD targets, if its target revision names one."""
        target = ctx.request.source.target_revision
        if not target or target == "HEAD":
            return None
        name = target.removeprefix("refs/tags/")
        if name in refs or target.startswith("refs/tags/"):
            return name
        if _HEX.fullmatch(target) or checkout.has_ref(f"refs/heads/{target}"):
            return None
        if checkout.has_ref(f"refs/remotes/origin/{target}") or checkout.has_ref(target):
            return None
        # Neither a tag, a branch nor a commit here: most likely a tag the .git lacks.
        return name

    def _tags(
        self,
        ctx: Context,
        cfg: GitSource,
        checkout: GitCheckout,
        head: str,
        checker: SignatureChecker,
        signers: list[VerifiedSigner],
        verified_tags: list[str],
    ) -> bool:
        f = ctx.findings
        refs = {r.name: r for r in checkout.tags()}
        patterns = ", ".join(cfg.tags)
        target = self._target_tag(ctx, checkout, refs)
        if target is not None:
            if target not in refs:
                f.failed(
                    "git.metadata",
                    target,
                    "git-metadata-missing",
                    f"the application targets tag {target}, which is not in the .git sent "
                    "with the sources\n  to fix:   fetch tags (Argo CD fetches them unless a "
                    "shallow depth is set; remove the depth for this repository)",
                )
                return False
            if not is_release_tag(target, cfg.tags):
                f.failed(
                    "git.tag-signature",
                    target,
                    "no-release-tag",
                    f"the application targets tag {target}, which is not a release tag\n"
                    f"  expected: a tag matching {patterns} (spec.source.git.tags)",
                )
                return False
            candidates = [refs[target]]
        else:
            release = [r for r in refs.values() if is_release_tag(r.name, cfg.tags)]
            candidates = [r for r in release if (r.peeled or r.oid) == head]
            if not candidates:
                self._no_candidate(ctx, checkout, head, release, refs, patterns)
                return False
        good: list[tuple[TagRef, VerifiedSigner]] = []
        bad: list[tuple[TagRef, GateError]] = []
        for ref in sorted(candidates, key=lambda r: r.name):
            try:
                signer, raw = self._check_tag(checkout, ref, head, checker)
            except GateError as e:
                bad.append((ref, e))
                continue
            good.append((ref, signer))
            _record_input(ctx, checkout, f"refs/tags/{ref.name}", raw)
        for ref, signer in good:
            f.passed(
                "git.tag-signature",
                ref.name,
                "verified",
                f"tag {ref.name} ({ref.oid}) at HEAD {head}, signed by "
                f"{'/'.join(sorted(signer.key_names))} ({signer.identity})",
            )
            signers.append(signer)
            verified_tags.append(ref.name)
        for ref, err in bad:
            if good:
                # Another release tag at HEAD verifies; this one is noise, not a deny.
                f.warn("git.tag-signature", ref.name, err.reason, err.diagnostics())
            else:
                f.error("git.tag-signature", ref.name, err)
        return bool(good)

    def _no_candidate(
        self,
        ctx: Context,
        checkout: GitCheckout,
        head: str,
        release: list[TagRef],
        refs: Mapping[str, TagRef],
        patterns: str,
    ) -> None:
        f = ctx.findings
        if release:
            where = ", ".join(
                f"{r.name} -> {(r.peeled or r.oid)[:12]}"
                for r in sorted(release, key=lambda r: r.name)[-MAX_LISTED:]
            )
            f.failed(
                "git.tag-signature",
                head,
                "tag-not-at-head",
                f"HEAD is not the target of any release tag\n"
                f"  found:    HEAD {head}; release tags: {where}\n"
                f"  expected: an annotated, signed tag matching {patterns} on HEAD\n"
                "  to fix:   deploy a tagged release (or tag this commit)",
            )
        elif checkout.is_shallow():
            f.failed(
                "git.metadata",
                head,
                "git-metadata-missing",
                "the repository is a shallow clone without release tags\n"
                "  to fix:   do not set a fetch depth for this repository (Argo CD fetches "
                "tags with a full clone)",
            )
        else:
            others = ", ".join(sorted(refs)[:MAX_LISTED]) or "none"
            f.failed(
                "git.tag-signature",
                head,
                "no-release-tag",
                f"the repository has no release tag\n"
                f"  found:    tags: {others}\n"
                f"  expected: an annotated, signed tag matching {patterns}",
            )

    def _check_tag(
        self, checkout: GitCheckout, ref: TagRef, head: str, checker: SignatureChecker
    ) -> tuple[VerifiedSigner, bytes]:
        """The tag's verified signer and its raw object bytes (what was verified)."""
        if ref.object_type == "commit":
            raise TagError(
                f"refs/tags/{ref.name} is a lightweight tag: it has no tag object to sign",
                reason="lightweight-tag",
                found=f"refs/tags/{ref.name} -> commit {ref.oid}",
                expected="an annotated, signed tag (git tag -s)",
            )
        if ref.object_type != "tag":
            raise MalformedObjectError(f"refs/tags/{ref.name} points at a {ref.object_type}")
        raw = checkout.read_object(ref.oid, "tag")
        if raw is None:
            raise GitMetadataMissingError(f"the tag object {ref.oid} is not in .git")
        tag = parse_tag(ref.oid, raw, checkout.fmt)
        # `git verify-tag` never compares these: a signed v1.0.0 re-pushed as v2.0.0
        # (a rollback dressed as a new release) would pass it.
        if tag.name != ref.name:
            raise TagError(
                "the tag object names another tag than the ref it was found under",
                reason="tag-name-mismatch",
                found=f"refs/tags/{ref.name} -> tag object 'tag {tag.name}'",
                expected=f"tag {ref.name}",
                hint="a signed tag was re-pushed under another name; deploy the original tag",
            )
        if tag.target_type != "commit" or tag.target != head:
            raise TagError(
                f"tag {ref.name} does not point at HEAD",
                reason="tag-not-at-head",
                found=f"{tag.target_type} {tag.target}",
                expected=f"commit {head} (HEAD)",
            )
        if tag.signed.signature is None:
            raise MissingEvidenceError(
                f"tag {ref.name} is annotated but not signed",
                expected="a tag signed by " + ", ".join(checker.signers),
            )
        signer = checker.verify(tag.signed.payload, tag.signed.signature, f"tag {ref.name}")
        return signer, raw

    # -- commit ----------------------------------------------------------------------

    def _commit(
        self,
        ctx: Context,
        checkout: GitCheckout,
        head: str,
        checker: SignatureChecker,
        signers: list[VerifiedSigner],
    ) -> bool:
        try:
            raw = checkout.read_object(head, "commit")
            if raw is None:
                raise GitMetadataMissingError(f"the commit {head} is not in .git")
            commit = parse_commit(head, raw, checkout.fmt)
            if commit.signed.signature is None:
                raise MissingEvidenceError(
                    f"HEAD commit {head} is not signed",
                    found=f"committer {commit.committer}",
                    expected="a commit signed by " + ", ".join(checker.signers),
                )
            signer = checker.verify(commit.signed.payload, commit.signed.signature, "HEAD")
        except GateError as e:
            ctx.findings.error("git.commit-signature", head, e)
            return False
        _record_input(ctx, checkout, head, raw)
        ctx.findings.passed(
            "git.commit-signature",
            head,
            "verified",
            f"signed by {'/'.join(sorted(signer.key_names))} ({signer.identity})",
        )
        signers.append(signer)
        return True

    # -- threshold -------------------------------------------------------------------

    def _threshold(
        self, ctx: Context, cfg: GitSource, head: str, signers: list[VerifiedSigner]
    ) -> None:
        counted = distinct_signers(signers) & set(cfg.signers)
        found = "; ".join(
            f"{s.where}: {'/'.join(sorted(s.key_names))} ({s.identity})" for s in signers
        )
        if len(counted) < cfg.threshold:
            ctx.findings.failed(
                "git.signers",
                head,
                "threshold-not-met",
                f"{len(counted)} distinct trusted signer(s), the policy requires "
                f"{cfg.threshold}\n"
                f"  found:    {found or 'none'}\n"
                f"  expected: {cfg.threshold} of {', '.join(cfg.signers)}\n"
                "  to fix:   more signers must sign (one key counts once, however many "
                "signatures it made)",
            )
            return
        ctx.findings.passed(
            "git.signers",
            head,
            "threshold-met",
            f"{len(counted)} of {cfg.threshold} required: {', '.join(sorted(counted))}",
        )

    # -- tree ------------------------------------------------------------------------

    def _tree(self, ctx: Context, checkout: GitCheckout, head: str) -> None:
        f = ctx.findings
        subject = str(ctx.request.source.path)
        try:
            raw = checkout.read_object(head, "commit")
            if raw is None:
                raise GitMetadataMissingError(f"the commit {head} is not in .git")
            commit = parse_commit(head, raw, checkout.fmt)
            expected = checkout.tree_files(commit.tree)
            actual = worktree_files(checkout.root, checkout.fmt)
        except GateError as e:
            f.error("git.tree", subject, e)
            return
        except OSError as e:  # an unreadable file cannot be proven equal: undecided
            f.error("git.tree", subject, SourceError(f"cannot read the working tree: {e}"))
            return
        diff = compare_tree(expected, actual)
        if diff.clean:
            f.passed(
                "git.tree",
                subject,
                "tree-matches",
                f"{len(expected)} files equal the tree of {head} (checkout {checkout.root})",
            )
            return
        lines = []
        for label, paths in (
            ("modified", diff.modified),
            ("added", diff.added),
            ("deleted", diff.deleted),
        ):
            if paths:
                shown = ", ".join(paths[:MAX_LISTED])
                more = f" (+{len(paths) - MAX_LISTED} more)" if len(paths) > MAX_LISTED else ""
                lines.append(f"  {label}: {shown}{more}")
        f.failed(
            "git.tree",
            subject,
            "tree-mismatch",
            f"the files on disk are not the signed commit's tree ({head})\n"
            + "\n".join(lines)
            + "\n  to fix:   render a clean checkout of the signed revision",
        )


# -- rollback (spec.source.git.rollback, ADR 12) ----------------------------------------


def rollback_state_path(policy: LoadedPolicy, rollback: GitRollback) -> Path:
    """``rollback.state``; a relative path is beside the policy file, never the cwd."""
    path = Path(rollback.state)
    return path if path.is_absolute() else Path(policy.path).parent / path


def _public_url(url: str) -> str:
    """A repository URL without user info, query or fragment (never store credentials)."""
    if "://" not in url:
        return url  # scp-like (git@host:path) or a path: no password can hide in it
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://<unparsable>"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def application_key(source: SourceInfo, checkout_root: Path) -> str:
    """The application whose last allowed revision is kept.

    ``ARGOCD_APP_NAME`` when given (two apps from one repository are two keys); else the
    repository URL with the app's path inside the checkout; else the app directory's
    absolute path.
    """
    if source.app_name:
        return f"argocd-app:{source.app_name}"
    here = source.path.resolve()
    if source.repo:
        if source.app_path is not None:
            rel = PurePosixPath(source.app_path)
        else:
            try:
                rel = PurePosixPath(here.relative_to(checkout_root.resolve()).as_posix())
            except ValueError:
                rel = PurePosixPath(here.as_posix())
        app_path = "/".join(p for p in rel.parts if p not in (".", "/"))
        return f"repo:{_public_url(source.repo)}#{app_path}"
    return f"path:{here}"


def _release_tag(tags: Sequence[str]) -> tuple[str, ReleaseVersion | None] | None:
    """The verified release tag at HEAD to record: the highest version, else the first."""
    if not tags:
        return None
    versions = [(t, ReleaseVersion.parse(t)) for t in tags]
    parsed = [(t, v) for t, v in versions if v is not None]
    if parsed:
        return max(parsed, key=lambda tv: tv[1])
    return sorted(tags)[0], None


@dataclass
class _Rollback:
    """One run's rollback check: the state as read before verification, then the verdict."""

    config: GitRollback
    state: RollbackState
    key: str
    previous: AllowedRevision | None

    @classmethod
    def read(cls, ctx: Context, config: GitRollback, checkout: GitCheckout) -> _Rollback | None:
        key = application_key(ctx.request.source, checkout.root)
        state = RollbackState(rollback_state_path(ctx.policy, config))
        try:
            previous = state.read(key)
        except StateError as e:
            # Could not decide (exit 3); never "no previous revision".
            ctx.findings.error("git.rollback", key, e)
            return None
        return cls(config, state, key, previous)

    # -- the verdict ---------------------------------------------------------------

    def check(
        self, ctx: Context, checkout: GitCheckout, head: str, verified_tags: Sequence[str]
    ) -> None:
        f = ctx.findings
        audit = ctx.policy.policy.spec.mode == "audit"
        if self.config.mode == "version":
            if not verified_tags:
                return  # no verified release tag: the tag check already denies this run
            bad = sorted(t for t in verified_tags if ReleaseVersion.parse(t) is None)
            if bad:
                f.failed(
                    "git.rollback",
                    self.key,
                    "version-unparsable",
                    f"rollback mode 'version' needs a release version, and tag {bad[0]} is not "
                    "one\n  expected: a tag such as v1.2.3 (v prefix optional; -pre and +build "
                    "allowed)\n  to fix:   narrow spec.source.git.tags to versioned release tags, "
                    "or use rollback mode 'descendant'",
                )
                return
        picked = _release_tag(verified_tags)
        tag, version = picked if picked is not None else (None, None)
        new = AllowedRevision(
            commit=head,
            tag=tag,
            version=str(version) if version is not None else None,
            policy_digest=ctx.policy.digest,
            recorded_at=ctx.now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        try:
            verdict = self._judge(checkout, new, version)
        except GateError as e:
            f.error("git.rollback", self.key, e)
            return
        ok, reason, detail = verdict
        if not ok:
            f.failed("git.rollback", self.key, reason, detail)
            return
        if audit:
            detail += "\n  (audit mode: the rollback state is not advanced)"
        f.passed("git.rollback", self.key, reason, detail)
        if not audit:
            ctx.on_allow.append(("git.rollback", lambda: self._record(ctx, new)))

    def _judge(
        self, checkout: GitCheckout, new: AllowedRevision, version: ReleaseVersion | None
    ) -> tuple[bool, str, str]:
        """(passes, reason, detail)."""
        prev = self.previous
        now = f"new: {new.describe(when=False)}"
        if prev is None:
            return (
                True,
                "first-revision",
                f"no revision was allowed for {self.key} before; this one becomes the "
                f"baseline when the run allows\n  {now}",
            )
        last = f"last allowed: {prev.describe()}"
        if self.config.mode == "version":
            return self._judge_version(prev, new, version, last, now)
        return self._judge_descent(checkout, prev, new, last, now)

    def _judge_version(
        self,
        prev: AllowedRevision,
        new: AllowedRevision,
        version: ReleaseVersion | None,
        last: str,
        now: str,
    ) -> tuple[bool, str, str]:
        previous = ReleaseVersion.parse(prev.version) if prev.version is not None else None
        if previous is None or version is None:
            return (
                False,
                "rollback-unverifiable",
                f"the last allowed revision has no release version to compare with "
                f"(it was recorded by a policy without rollback mode 'version')\n  {last}\n  "
                f"{now}\n  to fix:   an operator who accepts this revision resets the "
                f"application's row in the state (ADR 12)",
            )
        if version < previous:
            return (
                False,
                "rollback",
                f"version {version} is lower than the last allowed version {previous}: a "
                f"signed older release is being replayed\n  {last}\n  {now}\n  to fix:   "
                "deploy a release at or above it; an operator who means to roll back resets "
                "the application's row in the rollback state (ADR 12)",
            )
        if version == previous and new.commit != prev.commit:
            return (
                False,
                "rollback",
                f"version {version} was allowed at another commit: the same release version "
                f"now names different content\n  {last}\n  {now}\n  to fix:   release a new "
                "version instead of re-tagging one",
            )
        return (True, "version-not-lower", f"{last}\n  {now}")

    def _judge_descent(
        self,
        checkout: GitCheckout,
        prev: AllowedRevision,
        new: AllowedRevision,
        last: str,
        now: str,
    ) -> tuple[bool, str, str]:
        old, head = prev.commit, new.commit
        if old == head:
            return (True, "same-revision", f"HEAD is the last allowed commit\n  {last}")
        reset = (
            "an operator who means to deploy this revision resets the application's row "
            "in the rollback state (ADR 12)"
        )
        shallow = checkout.is_shallow()
        if len(old) != len(head):
            return (
                False,
                "rollback-unverifiable",
                f"the last allowed commit is a {len(old) * 4}-bit id and this repository "
                f"uses {len(head) * 4}-bit ids: it is another repository or a converted "
                f"one, so descent cannot be proven\n  {last}\n  {now}\n  to fix:   {reset}",
            )
        got = checkout.read_objects([old]).get(old)
        if got is None or got[0] != "commit":
            why = (
                "the repository is a SHALLOW clone and the commit lies beyond its depth"
                if shallow
                else "the repository is a full clone, so its history was rewritten "
                "(force-push) or this is another repository"
            )
            return (
                False,
                "rollback-unverifiable",
                f"the last allowed commit {old} is not in this .git: {why}; descent from it "
                f"cannot be proven\n  {last}\n  {now}\n  to fix:   "
                + ("fetch the full history (no depth) for this application" if shallow else reset),
            )
        if _descends(checkout, old, head):
            return (
                True,
                "descends",
                f"HEAD descends from the last allowed commit\n  {last}\n  {now}",
            )
        if _descends(checkout, head, old):
            return (
                False,
                "rollback",
                f"HEAD is an ANCESTOR of the last allowed commit: a signed older revision is "
                f"being replayed\n  {last}\n  {now}\n  to fix:   deploy the last allowed "
                f"release or a newer one; {reset}",
            )
        if shallow:
            return (
                False,
                "rollback-unverifiable",
                f"HEAD does not descend from the last allowed commit within this SHALLOW "
                f"clone's history, which may be cut between them\n  {last}\n  {now}\n  "
                "to fix:   fetch the full history (no depth) for this application",
            )
        return (
            False,
            "rollback",
            f"HEAD does not descend from the last allowed commit: the history diverged "
            f"or was rewritten (force-push)\n  {last}\n  {now}\n  to fix:   deploy a "
            f"revision built on the last allowed one; {reset}",
        )

    # -- after the allow -------------------------------------------------------------

    def _record(self, ctx: Context, new: AllowedRevision) -> None:
        # A failure raises StateError: the engine records it (exit 3) and withholds the
        # manifests; an allow whose state could not be advanced must not pass (ADR 12).
        self.state.advance(self.key, self.previous, new)
        ctx.findings.passed(
            "git.rollback",
            self.key,
            "recorded",
            f"{new.describe()} is now the last allowed revision ({self.state.path})",
        )


def _descends(checkout: GitCheckout, old: str, new: str) -> bool:
    """Is ``old`` ``new`` or one of its ancestors? Judged over re-hashed commit objects.

    Not ``git merge-base --is-ancestor`` alone: git takes parents from
    ``.git/info/grafts`` and from commit-graph files, both plain files in the untrusted
    ``.git`` (``--no-replace-objects`` does not turn grafts off), so a planted graft
    makes an old signed commit "descend" from the last allowed one. git only proposes
    the commits on the path (``rev-list --ancestry-path``); the parent links that prove
    it are read from the objects themselves, each hash-checked by ``parse_commit``. A
    graft can then only hide a path (a deny), never invent one.
    """
    if old == new:
        return True
    out = checkout.run(
        "-c",
        "core.commitGraph=false",
        "rev-list",
        "--ancestry-path",
        f"--max-count={MAX_ANCESTRY_COMMITS + 1}",
        "--end-of-options",
        f"^{old}",
        new,
        "--",
    )
    path = out.decode("ascii", "replace").split()
    if not path:
        return False
    if len(path) > MAX_ANCESTRY_COMMITS:
        raise VerificationError(
            f"more than {MAX_ANCESTRY_COMMITS} commits lie between the last allowed commit "
            "and HEAD; the gate does not read that many to prove descent",
            reason="rollback-unverifiable",
            hint="an operator who accepts this revision resets the application's row in the "
            "rollback state (ADR 12)",
        )
    on_path = set(path)
    if new not in on_path:
        return False
    objects = checkout.read_objects(path)
    parents: dict[str, tuple[str, ...]] = {}
    for oid in path:
        got = objects.get(oid)
        if got is None or got[0] != "commit":
            return False
        parents[oid] = parse_commit(oid, got[1], checkout.fmt).parents
    seen = {new}
    todo = [new]
    while todo:
        for parent in parents[todo.pop()]:
            if parent == old:
                return True
            if parent in on_path and parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return False
