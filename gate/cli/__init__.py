"""The ``gate`` command: ``main(argv) -> int``; one module per verb.

Exit codes (DESIGN): 0 allow, 1 deny, 2 usage/policy, 3 could not decide,
4 internal error. Human text goes to stderr; stdout carries only what the
caller asked for (manifests for ``generate``, the JSON report for
``--format json``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gate import __version__
from gate.cli import (
    generate,
    policy_check,
    publish,
    verify,
    verify_attestation,
    verify_blob,
    verify_image,
    verify_provenance,
)
from gate.errors import GateError
from gate.report import EXIT_INTERNAL, EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors with our exit code 2 and no traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"gate: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gate",
        description="Verify Git revisions, Helm charts and container images before GitOps sync.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verify.add_parser(sub)
    generate.add_parser(sub)
    policy_check.add_parser(sub)
    verify_blob.add_parser(sub)
    verify_provenance.add_parser(sub)
    verify_attestation.add_parser(sub)
    verify_image.add_parser(sub)
    publish.add_parser(sub)
    v = sub.add_parser("version", help="print the gate's version")
    v.set_defaults(func=lambda _args: _print_version())
    return parser


def _print_version() -> int:
    print(f"gitops-gate {__version__}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
        return code
    except GateError as e:
        print(f"gate: {e.diagnostics()}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # a bug: report it, deny
        print(f"gate: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL


def entrypoint() -> None:
    sys.exit(main())
