"""Parsing raw Git objects: signatures split as git splits them, and nothing else passes."""

from __future__ import annotations

import pytest

from gate.errors import VerificationError
from gate.evidence.git import (
    MalformedObjectError,
    TreeEntry,
    VerifiedSigner,
    distinct_signers,
    object_id,
    parse_commit,
    parse_tag,
    parse_tree,
    split_commit_signature,
    split_tag_signature,
)
from gate.sources.git import WorktreeFile, compare_tree
from testkit.gitrepo import GitRepo, SshSigner
from testkit.sshkeys import SshKey

SIG = b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"
HEAD = b"tree " + b"a" * 40 + b"\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n"


def _with_header(name: bytes, sig: bytes = SIG) -> bytes:
    lines = sig.rstrip(b"\n").split(b"\n")
    return HEAD + name + b" " + b"\n ".join(lines) + b"\n" + b"\nmessage\n"


def test_commit_signature_header_is_taken_out_of_the_payload() -> None:
    signed = split_commit_signature(_with_header(b"gpgsig"), "sha1", "c")
    assert signed.signature is not None and signed.signature.kind == "ssh"
    assert signed.signature.armored == SIG
    assert signed.payload == HEAD + b"\nmessage\n"


def test_sha256_repositories_sign_with_gpgsig_sha256() -> None:
    raw = _with_header(b"gpgsig-sha256")
    assert split_commit_signature(raw, "sha256", "c").signature is not None
    # In a SHA-1 repository that header is another format's signature: not ours, and
    # not part of the payload either (as git does).
    other = split_commit_signature(raw, "sha1", "c")
    assert other.signature is None and other.payload == HEAD + b"\nmessage\n"


def test_two_signature_headers_are_refused() -> None:
    raw = HEAD + b"gpgsig " + SIG[:-1].replace(b"\n", b"\n ") + b"\n"
    raw += b"gpgsig " + SIG[:-1].replace(b"\n", b"\n ") + b"\n\nm\n"
    with pytest.raises(MalformedObjectError):
        split_commit_signature(raw, "sha1", "c")


def test_signature_lookalike_in_the_message_is_payload() -> None:
    raw = HEAD + b"\ngpgsig not a header, just text\n"
    signed = split_commit_signature(raw, "sha1", "c")
    assert signed.signature is None and signed.payload == raw


def test_unknown_or_truncated_armor_is_refused() -> None:
    with pytest.raises(MalformedObjectError):
        split_commit_signature(_with_header(b"gpgsig", b"-----BEGIN FOO-----\nx\n"), "sha1", "c")
    with pytest.raises(MalformedObjectError):
        split_tag_signature(b"object x\n\nmsg\n-----BEGIN PGP SIGNATURE-----\nabc\n", "t")


def test_tag_signature_starts_at_the_last_marker() -> None:
    body = b"object x\ntype commit\ntag v1\n\nmsg\n"
    quoted = b"-----BEGIN SSH SIGNATURE-----\nquoted in the message\n"
    signed = split_tag_signature(body + quoted + SIG, "t")
    assert signed.payload == body + quoted
    assert signed.signature is not None and signed.signature.armored == SIG


@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
def test_real_objects_parse_and_are_hash_checked(
    git_repo: GitRepo, ssh_key: SshKey, make_git_repo: object, fmt: str
) -> None:
    repo = git_repo if fmt == "sha1" else make_git_repo("r256", "sha256")  # type: ignore[operator]
    repo.commit({"a.txt": b"a\n"}, sign=SshSigner(ssh_key))
    tag_oid = repo.tag("v1.0.0", sign=SshSigner(ssh_key))
    head = repo.head()
    commit = parse_commit(head, repo.cat_file(head), fmt)  # type: ignore[arg-type]
    assert commit.signed.signature is not None
    tag = parse_tag(tag_oid, repo.cat_file(tag_oid), fmt)  # type: ignore[arg-type]
    assert (tag.name, tag.target, tag.target_type) == ("v1.0.0", head, "commit")
    tree = parse_tree(commit.tree, repo.cat_file(commit.tree), fmt)  # type: ignore[arg-type]
    assert [e.name for e in tree] == ["a.txt"]
    # One changed byte: the object no longer is what its id names.
    with pytest.raises(MalformedObjectError):
        parse_commit(head, repo.cat_file(head).replace(b"change", b"chanGe"), fmt)  # type: ignore[arg-type]


def test_tag_headers_are_strict() -> None:
    raw = b"type commit\nobject " + b"a" * 40 + b"\ntag v1\n\nm\n"
    with pytest.raises(MalformedObjectError):
        parse_tag(object_id("tag", raw, "sha1"), raw, "sha1")


@pytest.mark.parametrize("name", [b"..", b".git", b".GIT", b"a/b", b""])
def test_unsafe_tree_names_are_refused(name: bytes) -> None:
    raw = b"100644 " + name + b"\x00" + b"\x01" * 20
    with pytest.raises(MalformedObjectError):
        parse_tree(object_id("tree", raw, "sha1"), raw, "sha1")


def test_truncated_tree_is_refused() -> None:
    raw = b"100644 a\x00" + b"\x01" * 10
    with pytest.raises(MalformedObjectError):
        parse_tree(object_id("tree", raw, "sha1"), raw, "sha1")


def test_malformed_is_a_deny_not_an_error() -> None:
    assert issubclass(MalformedObjectError, VerificationError)


def test_distinct_signers() -> None:
    a = VerifiedSigner("fp-a", frozenset({"a"}), "tag")
    a2 = VerifiedSigner("fp-a", frozenset({"a"}), "commit")
    both = VerifiedSigner("fp-x", frozenset({"a", "b"}), "tag")
    b = VerifiedSigner("fp-b", frozenset({"b"}), "commit")
    assert distinct_signers([a, a2]) == {"a"}  # one key, two signatures: one signer
    assert len(distinct_signers([both])) == 1  # one key under two names: one slot
    assert distinct_signers([both, a]) == {"a", "b"}  # matching finds the assignment
    assert distinct_signers([a, b]) == {"a", "b"}


def test_compare_tree() -> None:
    blob = object_id("blob", b"x\n", "sha1")
    expected = {
        "a": TreeEntry("100644", "a", blob),
        "l": TreeEntry("120000", "l", object_id("blob", b"a", "sha1")),
        "sub": TreeEntry("160000", "sub", "c" * 40),
    }
    actual = {
        "a": WorktreeFile("blob", blob),
        "l": WorktreeFile("blob", object_id("blob", b"a", "sha1")),  # a file, not a link
        "new": WorktreeFile("blob", blob),
    }
    diff = compare_tree(expected, actual)
    assert diff.modified == ("l",) and diff.added == ("new",) and diff.deleted == ("sub",)
