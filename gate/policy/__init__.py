"""The trusted policy: model, loader and rule matching. Never read from the source."""

from gate.policy.loader import LoadedPolicy, load_policy, parse_policy
from gate.policy.match import chart_rule_for, image_rule_for
from gate.policy.model import GatePolicy

__all__ = [
    "GatePolicy",
    "LoadedPolicy",
    "chart_rule_for",
    "image_rule_for",
    "load_policy",
    "parse_policy",
]
