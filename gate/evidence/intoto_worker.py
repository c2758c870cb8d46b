"""Child process of ``gate.evidence.intoto.verify_layout`` for layouts with inspections.

``python -I -m gate.evidence.intoto_worker REQUEST.json``, started by the
hardened ``run_tool`` with its working directory set to where the
inspections must run. The request (written by the gate into a private
directory) names the layout file, the policy's layout keys and the staged
links directory. Exactly one JSON line goes to stdout:
``{"ok": true}`` or ``{"ok": false, "reason": ..., "error": ...}``; anything
in-toto or an inspection prints goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from gate.evidence.intoto import failure_reason, load_layout, verify_staged

    if len(argv) != 1:
        print("usage: python -m gate.evidence.intoto_worker REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(argv[0]).read_text())
    verdict: dict[str, object]
    with contextlib.redirect_stdout(sys.stderr):
        try:
            layout = load_layout(Path(request["layout"]))
            verify_staged(
                layout, request["keys"], Path(request["links"]), float(request["inspect_timeout"])
            )
            verdict = {"ok": True}
        except Exception as e:  # every failure is a verdict, never a pass
            verdict = {
                "ok": False,
                "reason": failure_reason(e),
                "error": f"{type(e).__name__}: {e}",
            }
    sys.stdout.write(json.dumps(verdict) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through a child process
    sys.exit(main(sys.argv[1:]))
