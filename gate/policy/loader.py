"""Load a policy file: strict YAML, the model, a digest over the exact bytes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gate.errors import GateError, PolicyError
from gate.policy.model import API_VERSION, KIND, GatePolicy

MAX_POLICY_BYTES = 1 << 20


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy and where it came from."""

    policy: GatePolicy
    digest: str  # "sha256:<hex>" of the file's bytes, as it goes into every report
    path: str

    @property
    def name(self) -> str:
        return self.policy.metadata.name


def load_policy(path: str | Path) -> LoadedPolicy:
    """Read, parse and validate ``path``; raise :class:`PolicyError` with the field path."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_POLICY_BYTES + 1)
    except OSError as e:
        raise PolicyError(
            f"cannot read policy file {p}: {e.strerror}",
            hint="pass --policy FILE (or set GATE_POLICY) to a readable GatePolicy file",
        ) from e
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy file {p} is larger than {MAX_POLICY_BYTES} bytes")
    return parse_policy(data, source=str(p))


def parse_policy(data: bytes, *, source: str) -> LoadedPolicy:
    from gate.yamlstrict import load_all

    try:
        docs = load_all(data, source=source)
    except GateError as e:
        raise PolicyError(
            f"policy file is not valid YAML: {e.message}",
            reason="policy-invalid",
            found=e.found,
            hint="fix the policy file's YAML (duplicate keys and aliases are refused)",
        ) from e
    if len(docs) != 1:
        raise PolicyError(
            f"{source}: expected exactly one YAML document, found {len(docs)}",
            expected=f"apiVersion: {API_VERSION}, kind: {KIND}",
        )
    try:
        policy = GatePolicy.model_validate(docs[0])
    except ValidationError as e:
        raise PolicyError(
            f"{source}: invalid GatePolicy:\n" + _format_errors(e),
            expected=f"a {KIND} ({API_VERSION}) as in the README's policy reference",
        ) from e
    return LoadedPolicy(
        policy=policy, digest="sha256:" + hashlib.sha256(data).hexdigest(), path=source
    )


def _format_errors(e: ValidationError) -> str:
    lines = []
    for err in e.errors(include_url=False):
        where = _loc(err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling against the policy reference)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "literal_error":
            msg = f"{msg}, found {err.get('input')!r}"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "union[", "constrained-")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out
