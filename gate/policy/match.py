"""Which policy rule governs an image or a chart: the first match, in file order."""

from __future__ import annotations

from gate.policy.glob import glob_match
from gate.policy.model import ChartRule, ImageRule, Spec
from gate.reference import ImageReference, normalise_repository_pattern


def image_rule_for(spec: Spec, ref: ImageReference) -> tuple[int, ImageRule] | None:
    """The first rule whose patterns match the repository name (host and path)."""
    for i, rule in enumerate(spec.images):
        for pattern in rule.match:
            if glob_match(normalise_repository_pattern(pattern), ref.name):
                return i, rule
    return None


def chart_rule_for(spec: Spec, chart_url: str) -> tuple[int, ChartRule] | None:
    """The first chart rule whose patterns match the chart's repository URL."""
    for i, rule in enumerate(spec.charts):
        if any(glob_match(p, chart_url) for p in rule.match):
            return i, rule
    return None
