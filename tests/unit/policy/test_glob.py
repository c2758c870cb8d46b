import pytest

from gate.policy.glob import GlobSet, glob_match


@pytest.mark.parametrize(
    ("pattern", "value", "ok"),
    [
        ("registry.example.com/acme/*", "registry.example.com/acme/app", True),
        ("registry.example.com/acme/*", "registry.example.com/acme/app/sub", False),
        ("registry.example.com/acme/**", "registry.example.com/acme/app/sub", True),
        ("registry.example.com/acme/**", "registry.example.com.evil.io/acme/app", False),
        ("registry.example.com/acme/*", "xregistry.example.com/acme/app", False),
        ("registry.example.com/acme/*", "registry.example.com/acme/app-x", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/y/bc", False),
        ("v*", "v1.2.3", True),
        ("v*", "release/v1", False),
        ("v?.0", "v1.0", True),
        ("v?.0", "v10.0", False),
        ("a.b", "axb", False),  # '.' is literal
        ("https://charts.example.com/**", "https://charts.example.com/stable/app", True),
        ("oci://registry.example.com/charts/**", "oci://registry.example.com/charts/app", True),
        ("oci://registry.example.com/charts/**", "oci://registry.example.com/other/app", False),
        (
            "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/*",
            "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0",
            True,
        ),
        (
            "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/*",
            "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
            False,
        ),
    ],
)
def test_anchored(pattern: str, value: str, ok: bool) -> None:
    assert glob_match(pattern, value) is ok


def test_newline_does_not_escape_anchor() -> None:
    assert not glob_match("a/*", "a/b\nc/d")
    assert glob_match("a/**", "a/b\nc")  # ** crosses anything, and still anchored at start


def test_globset() -> None:
    s = GlobSet(("a/*", "b/**"))
    assert s.matches("a/x") and s.matches("b/x/y") and not s.matches("c/x")
