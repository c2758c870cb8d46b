"""Anchored globs for policy patterns.

``*`` and ``?`` stay inside one path segment; ``**`` crosses ``/``. Patterns are
anchored at both ends, so ``registry.example.com/acme/*`` never matches
``registry.example.com/acme/app/../../evil`` or ``registry.example.com.evil.io/acme/x``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile ``pattern`` into an anchored regular expression."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            # `a/**/b` also matches `a/b`.
            if out[-1] == ".*" and i < len(pattern) and pattern[i] == "/":
                out[-1] = "(?:.*/)?"
                i += 1
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def glob_match(pattern: str, value: str) -> bool:
    """True when ``value`` matches the whole anchored ``pattern``."""
    return compile_glob(pattern).fullmatch(value) is not None


@dataclass(frozen=True)
class GlobSet:
    """Several patterns; matches when any does."""

    patterns: tuple[str, ...]

    def matches(self, value: str) -> bool:
        return any(glob_match(p, value) for p in self.patterns)
