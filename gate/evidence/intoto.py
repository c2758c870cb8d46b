"""in-toto layouts (classic Metablock, in-toto 3.x): verify a supply chain against its layout.

The ``in-toto`` library does the work (layout signature by a policy key,
expiry, every step's threshold of functionary-signed links, artifact rules).
Two refusals come first:

- a layout with inspections is refused (``layout-inspections-refused``)
  unless the policy sets ``allowInspections: true``: an inspection is a
  command chosen by the layout's author (in-toto spec §5.3);
- the layout must be signed by a key the POLICY names (never by a key the
  layout or a link carries).

Links come from a directory (``layout.links``) and from attestations
(``link_envelopes``: DSSE envelopes found for the image or supplied as files):

- a DSSE envelope whose payload is a classic link (``"_type": "link"``), which
  in-toto 3.x verifies natively;
- an in-toto Statement with the link predicate
  (``https://in-toto.io/attestation/link/v0.3``, or the older
  ``https://in-toto.io/Link/v0.2``): its subjects are the step's products, its
  predicate's ``materials`` the materials. The functionary's signature over
  the STATEMENT is what in-toto checks (``_StatementLink``); only then is the
  predicate read as a link.

They are staged in a private directory under in-toto's file names
(``<step>.<keyid[:8]>.link``): an envelope goes under the keyid of the step's
authorized functionary whose key verifies its signature (cosign writes keyid
``""``; the keyid is not signed, so setting it changes nothing that was
signed). Staging only picks file names: in-toto verifies every signature
again. No link at all for the layout's steps is ``layout-links-missing``
(never a pass); a step with too few links, and any other failure inside
in-toto, is ``layout-invalid`` with its message.

A layout WITH inspections (allowed) is verified in a child process
(``gate.evidence.intoto_worker``, through the hardened ``run_tool``: clean
environment, own process group, time limit, output cap), with its working
directory set to ``workdir``: inspections run there and read the final
product from it. The gate process never changes its own working directory
(image checks run concurrently). Without inspections verification stays
in-process. A child that does not finish in time is
``layout-inspection-timeout`` (could not decide).
"""

from __future__ import annotations

import base64
import binascii
import json
import stat
import sys
import tempfile
from collections.abc import Mapping, Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any

from gate.errors import EvidenceError, GateError, RenderError
from gate.evidence.statement import AttestationError
from gate.signing.keys import PublicKey

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
LINK_PREDICATE_TYPES = (
    "https://in-toto.io/attestation/link/v0.3",
    "https://in-toto.io/Link/v0.2",
)
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
MAX_LINK_BYTES = 4 * 1024 * 1024
MAX_LINK_ENVELOPES = 256
#: Wall-clock limit for a layout verification that runs inspections (the whole child).
DEFAULT_INSPECTION_TIMEOUT_S = 30.0
_MAX_WORKER_OUTPUT = 256 * 1024


def sslib_key_dict(key: PublicKey) -> dict[str, Any]:
    """The in-toto key dict (with ``keyid``) of a policy public key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    if isinstance(key, ed25519.Ed25519PublicKey):
        scheme = "ed25519"
    elif isinstance(key, rsa.RSAPublicKey):
        scheme = "rsassa-pss-sha256"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        scheme = f"ecdsa-sha2-nistp{key.curve.key_size}"
    else:  # pragma: no cover - PublicKey is closed
        raise TypeError(f"unsupported key {type(key).__name__}")
    k = SSlibKey.from_crypto(key, scheme=scheme)
    doc: dict[str, Any] = k.to_dict()
    doc["keyid"] = k.keyid
    return doc


def load_layout(path: Path) -> Any:
    from in_toto.models.metadata import Metablock

    try:
        return Metablock.load(str(path))
    except Exception as e:  # in-toto raises many types for a bad file
        raise AttestationError(
            f"the in-toto layout {path} cannot be read: {type(e).__name__}: {e}",
            reason="malformed-statement",
        ) from e


def inspections(layout: Any) -> list[str]:
    return [str(getattr(i, "name", "?")) for i in (getattr(layout.signed, "inspect", None) or [])]


# --- links from attestations ----------------------------------------------------------------


def _statement_link(payload: Mapping[str, Any]) -> Any:
    """The classic ``Link`` an in-toto link-predicate Statement describes."""
    from in_toto.models.link import Link

    if payload.get("_type") not in STATEMENT_TYPES:
        raise ValueError("not an in-toto Statement")
    if payload.get("predicateType") not in LINK_PREDICATE_TYPES:
        raise ValueError(f"predicate type {payload.get('predicateType')!r} is not a link")
    pred = payload.get("predicate")
    if not isinstance(pred, dict):
        raise ValueError("the link predicate is not an object")

    def digests(items: Any, what: str) -> dict[str, dict[str, str]]:
        if isinstance(items, dict):  # Link v0.2: a map of name -> digest set
            items = [{"name": k, "digest": v} for k, v in items.items()]
        if not isinstance(items, list):
            raise ValueError(f"{what} is not a list")
        out: dict[str, dict[str, str]] = {}
        for rd in items:
            if not isinstance(rd, dict) or not isinstance(rd.get("name"), str):
                raise ValueError(f"a {what} entry has no name")
            d = rd.get("digest")
            if not isinstance(d, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in d.items()
            ):
                raise ValueError(f"{what} {rd['name']!r} has no digest set")
            out[rd["name"]] = dict(d)
        return out

    command = pred.get("command") or []
    if isinstance(command, str):  # Link v0.2 wrote a string
        command = command.split()
    link = Link(
        name=str(pred.get("name") or ""),
        materials=digests(pred.get("materials") or [], "material"),
        products=digests(payload.get("subject") or [], "subject"),
        command=[str(c) for c in command],
        byproducts=dict(pred.get("byproducts") or {}),
        environment=dict(pred.get("environment") or {}),
    )
    link.validate()
    return link


def _link_name(payload: bytes) -> str | None:
    """The step name a DSSE payload records, if it is a link (classic or link predicate)."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("_type") == "link":
        name = doc.get("name")
    elif doc.get("_type") in STATEMENT_TYPES and doc.get("predicateType") in LINK_PREDICATE_TYPES:
        name = (
            (doc.get("predicate") or {}).get("name")
            if isinstance(doc.get("predicate"), dict)
            else None
        )
    else:
        return None
    return name if isinstance(name, str) and name else None


def _load_metadata(path: Path) -> Any:
    """A staged link: in-toto metadata, or a link-predicate Statement in DSSE."""
    from in_toto.models.metadata import Metadata

    data = json.loads(path.read_bytes())
    if isinstance(data, dict) and data.get("payloadType") == IN_TOTO_PAYLOAD_TYPE:
        try:
            payload = json.loads(base64.b64decode(data.get("payload") or "", validate=True))
        except (ValueError, binascii.Error):
            payload = None
        if isinstance(payload, dict) and payload.get("_type") in STATEMENT_TYPES:
            return _statement_link_class().from_dict(data)
    return Metadata.from_dict(data)


_STATEMENT_LINK: Any = None


def _statement_link_class() -> Any:
    """``in_toto`` ``Envelope`` whose payload is a link-predicate Statement (imported lazily)."""
    global _STATEMENT_LINK
    if _STATEMENT_LINK is None:
        from in_toto.models.metadata import Envelope

        class StatementLink(Envelope):  # type: ignore[misc]
            # verify_signature (inherited) checks the DSSE signature over the Statement.
            def get_payload(self) -> Any:
                return _statement_link(json.loads(self.payload.decode("utf-8")))

        _STATEMENT_LINK = StatementLink
    return _STATEMENT_LINK


def _verifies(key_dict: Mapping[str, Any], keyid: str, pae: bytes, sig: bytes) -> bool:
    from securesystemslib.signer import Key, Signature  # type: ignore[attr-defined]

    try:
        key = Key.from_dict(keyid, deepcopy(dict(key_dict)))
        key.verify_signature(Signature(keyid, sig.hex()), pae)
    except Exception:  # any failure: not this functionary
        return False
    return True


def _regular_file(path: Path, limit: int) -> bytes | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
        return None
    return path.read_bytes()


def stage_links(
    layout: Any, link_dir: Path | None, link_envelopes: Sequence[bytes], dest: Path
) -> int:
    """Write the links the layout's steps can use into ``dest``; return how many.

    Directory links come first (only in-toto's file names, regular files);
    attestation envelopes fill the (step, functionary) slots still empty.
    """
    from in_toto.models.link import FILENAME_FORMAT

    from gate.signing.dsse import Envelope, EnvelopeFormatError

    payload = layout.get_payload()
    slots: dict[str, list[str]] = {}
    for step in payload.steps:
        slots.setdefault(step.name, []).extend(step.pubkeys)
    staged = 0
    taken: set[str] = set()
    if link_dir is not None:
        for step_name, keyids in slots.items():
            for keyid in keyids:
                name = FILENAME_FORMAT.format(step_name=step_name, keyid=keyid)
                data = _regular_file(link_dir / name, MAX_LINK_BYTES)
                if data is not None:
                    (dest / name).write_bytes(data)
                    taken.add(name)
                    staged += 1
    for raw in link_envelopes[:MAX_LINK_ENVELOPES]:
        if len(raw) > MAX_LINK_BYTES:
            continue
        try:
            env = Envelope.from_json(raw)
        except (EnvelopeFormatError, ValueError):
            continue
        if env.payload_type != IN_TOTO_PAYLOAD_TYPE:
            continue
        link_name = _link_name(env.payload)
        if link_name is None or link_name not in slots:
            continue
        pae = env.pae()
        for keyid in slots[link_name]:
            name = FILENAME_FORMAT.format(step_name=link_name, keyid=keyid)
            key = payload.keys.get(keyid)
            if name in taken or key is None:
                continue
            sig = next((s.sig for s in env.signatures if _verifies(key, keyid, pae, s.sig)), None)
            if sig is None:
                continue
            doc = {
                "payload": base64.b64encode(env.payload).decode(),
                "payloadType": env.payload_type,
                "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}],
            }
            (dest / name).write_text(json.dumps(doc))
            taken.add(name)
            staged += 1
            break
    return staged


# --- verification ---------------------------------------------------------------------------


def _load_links(layout: Any, link_dir: Path) -> dict[str, dict[str, Any]]:
    """``verifylib.load_links_for_layout`` with link-predicate Statements understood."""
    from in_toto.exceptions import LinkNotFoundError
    from in_toto.models.link import FILENAME_FORMAT

    out: dict[str, dict[str, Any]] = {}
    for step in layout.steps:
        per_step: dict[str, Any] = {}
        for authorized in step.pubkeys:
            subkeys = list((layout.keys.get(authorized, {}).get("subkeys") or {}).keys())
            for keyid in [authorized, *subkeys]:
                path = link_dir / FILENAME_FORMAT.format(step_name=step.name, keyid=keyid)
                if path.is_file():
                    per_step[keyid] = _load_metadata(path)
        if len(per_step) < step.threshold:
            raise LinkNotFoundError(
                f"Step '{step.name}' requires '{step.threshold}' link metadata file(s), "
                f"found '{len(per_step)}'."
            )
        out[step.name] = per_step
    return out


def verify_staged(
    metadata: Any, key_dict: Mapping[str, Any], link_dir: Path, inspect_timeout: float
) -> None:
    """``in_toto_verify``, step for step, with links loaded by ``_load_links``.

    Inspections (if the layout has any) run in the CURRENT working directory:
    only the worker process calls this for such a layout.
    """
    from in_toto import verifylib as v

    v.verify_metadata_signatures(metadata, dict(key_dict))
    layout = metadata.get_payload()
    v.verify_layout_expiration(layout)
    steps = _load_links(layout, link_dir)
    steps = v.verify_link_signature_thresholds(layout, steps)
    chain = v.verify_sublayouts(layout, steps, str(link_dir), inspect_timeout)
    v.verify_all_steps_command_alignment(layout, chain)
    v.verify_threshold_constraints(layout, chain)
    reduced = v.reduce_chain_links(chain)
    v.verify_all_item_rules(layout.steps, reduced)
    inspected = v.run_all_inspections(layout, False, inspect_timeout)
    combined = dict(reduced)
    combined.update(inspected)
    v.verify_all_item_rules(layout.inspect, combined)


def failure_reason(exc: BaseException) -> str:
    return "layout-invalid"


def _failure(reason: str, message: str) -> AttestationError:
    if reason == "layout-links-missing":
        return AttestationError(
            f"no link of the in-toto layout's steps was found: {message}",
            reason=reason,
            hint="attach each step's link as an attestation of the image (DSSE, in-toto link "
            "predicate or classic link), supply it with --attestations, or set layout.links",
        )
    return AttestationError(
        f"the supply chain does not satisfy the in-toto layout: {message}", reason="layout-invalid"
    )


def _verify_in_child(
    layout: Any,
    key_dict: Mapping[str, Any],
    staged: Path,
    private: Path,
    workdir: Path,
    timeout_s: float,
) -> None:
    """Run the verification (with its inspections) in ``gate.evidence.intoto_worker``."""
    from gate.render.process import run_tool

    layout_file = private / "root.layout"
    layout.dump(str(layout_file))
    request = private / "request.json"
    request.write_text(
        json.dumps(
            {
                "layout": str(layout_file),
                "keys": dict(key_dict),
                "links": str(staged),
                # in-toto's own per-command limit stays above ours: the hard limit is the
                # child's wall clock (run_tool kills the whole process group).
                "inspect_timeout": timeout_s * 2,
            }
        )
    )
    argv = [sys.executable, "-I", "-m", "gate.evidence.intoto_worker", str(request)]
    try:
        out = run_tool(argv, cwd=workdir, timeout_s=timeout_s, max_output_bytes=_MAX_WORKER_OUTPUT)
    except RenderError as e:
        if e.reason == "render-timeout":
            raise EvidenceError(
                f"the in-toto layout verification (with inspections) did not finish in "
                f"{timeout_s:g} s; killed",
                reason="layout-inspection-timeout",
                hint="an inspection of the layout may hang; run in-toto-verify locally",
            ) from None
        raise EvidenceError(
            f"the in-toto verification process failed: {e.message}",
            reason="layout-verifier-failed",
        ) from None
    try:
        verdict = json.loads(out)
        ok, reason, message = verdict["ok"], verdict.get("reason"), verdict.get("error")
    except (ValueError, KeyError, TypeError) as e:
        raise EvidenceError(
            f"the in-toto verification process answered no verdict: {e}",
            reason="layout-verifier-failed",
        ) from None
    if ok is not True:
        raise _failure(str(reason or "layout-invalid"), str(message or "failed"))


def verify_layout(
    layout_path: Path,
    layout_keys: Mapping[str, PublicKey],
    link_dir: Path | None,
    *,
    allow_inspections: bool = False,
    workdir: Path | None = None,
    link_envelopes: Sequence[bytes] = (),
    timeout_s: float = DEFAULT_INSPECTION_TIMEOUT_S,
) -> None:
    """Verify the supply chain (links in ``link_dir`` and ``link_envelopes``) against the layout.

    ``workdir``: where inspections run (and find the final product) when
    allowed; an empty private directory when None.
    """
    layout = load_layout(layout_path)
    names = inspections(layout)
    if names and not allow_inspections:
        raise AttestationError(
            "the in-toto layout has inspections, which run commands its author chose",
            reason="layout-inspections-refused",
            found=", ".join(names),
            hint="remove the inspections, or set allowInspections: true for this rule if the "
            "layout's author may run commands in the gate",
        )
    key_dict = {d["keyid"]: d for d in (sslib_key_dict(k) for k in layout_keys.values())}
    with tempfile.TemporaryDirectory(prefix="gate-intoto-") as tmp:
        private = Path(tmp)
        staged = private / "links"
        staged.mkdir()
        try:
            count = stage_links(layout, link_dir, link_envelopes, staged)
        except Exception as e:  # a layout in-toto cannot read its steps from
            raise _failure("layout-invalid", f"{type(e).__name__}: {e}") from e
        if count == 0 and layout.get_payload().steps:
            where = f"{link_dir}" if link_dir is not None else "no links directory"
            raise _failure(
                "layout-links-missing",
                f"{where}; {len(link_envelopes)} attestation envelope(s) examined",
            )
        if names:
            scratch = private / "work"
            scratch.mkdir()
            _verify_in_child(layout, key_dict, staged, private, workdir or scratch, timeout_s)
            return
        try:
            verify_staged(layout, key_dict, staged, timeout_s)
        except GateError:
            raise
        except Exception as e:  # in-toto's own exception tree: any of it is a deny
            raise _failure(failure_reason(e), f"{type(e).__name__}: {e}") from e


__all__ = [
    "DEFAULT_INSPECTION_TIMEOUT_S",
    "LINK_PREDICATE_TYPES",
    "failure_reason",
    "inspections",
    "load_layout",
    "sslib_key_dict",
    "stage_links",
    "verify_layout",
    "verify_staged",
]
