"""`flowgram` command line: check, graph, run, play, migrate.

Exit codes follow linters: 0 fine, 1 the flows are invalid, 2 usage or I/O
problem (a missing path, an unusable environment variable).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from engine.language import Finding, Severity
from engine.language.project import PathError

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with how flowgram was called or configured; printed without a traceback."""


def _load_checked(paths: Sequence[str]):
    """Load, validate and check; returns (project, registry, findings)."""
    from engine.actions.registry import load_registry
    from engine.checks import check_paths

    try:
        registry = load_registry()
    except Exception as exc:  # a broken plugin must not look like a broken flow
        raise UsageError(f"cannot load installed actions: {exc}") from exc
    try:
        project, findings = check_paths(paths, registry)
    except PathError as exc:
        raise UsageError(str(exc)) from exc
    return project, registry, findings


def _github_escape(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def format_findings(findings: Sequence[Finding], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            [
                {"file": f.position.file, "line": f.position.line, "column": f.position.column,
                 "severity": f.severity.value, "code": f.code, "message": f.message}
                for f in findings
            ],
            ensure_ascii=False,
            indent=2,
        )
    if fmt == "github":
        return "\n".join(
            f"::{f.severity.value} file={f.position.file},line={f.position.line},col={f.position.column},"
            f"title={f.code}::{_github_escape(f.message)}"
            for f in findings
        )
    return "\n".join(str(f) for f in findings)


def cmd_check(args: argparse.Namespace) -> int:
    project, registry, findings = _load_checked(args.paths)
    errors = sum(f.severity is Severity.ERROR for f in findings)
    warnings = len(findings) - errors
    output = format_findings(findings, args.format)
    if output:
        print(output)
    if args.matrix and not errors:
        from engine.checks import silence_matrix

        matrix = silence_matrix(project, registry)
        print(json.dumps(matrix.to_json(), ensure_ascii=False, indent=2) if args.format == "json" else matrix.render_text())
    if args.format == "text":
        states = sum(len(flow.states) for flow in project.flows.values())
        summary = f"{len(project.files)} file(s), {len(project.flows)} flow(s), {states} state(s): "
        summary += f"{errors} error(s), {warnings} warning(s)"
        print(summary, file=sys.stderr)
    return EXIT_INVALID if errors else EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from engine.graph import to_dot, to_mermaid

    project, _, findings = _load_checked(args.paths)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors and not project.flows:
        print(format_findings(errors, "text"), file=sys.stderr)
        return EXIT_INVALID
    if errors:
        print(f"warning: drawing flows that have {len(errors)} error(s); run `flowgram check`", file=sys.stderr)
    print(to_mermaid(project) if args.format == "mermaid" else to_dot(project), end="")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from engine.serve import run

    return run(args.paths)


def cmd_play(args: argparse.Namespace) -> int:
    from engine.playground import play

    return play(args.paths, language=args.lang)


def cmd_migrate(args: argparse.Namespace) -> int:
    from engine.serve import migrate

    return migrate()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowgram", description="Telegram bots as YAML flows that never stay silent.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate flows and prove every state answers every input")
    check.add_argument("paths", nargs="+", metavar="PATH", help="flow files or directories")
    check.add_argument("--format", choices=("text", "json", "github"), default="text")
    check.add_argument("--matrix", action="store_true", help="print which rule answers each state x input kind")
    check.set_defaults(handler=cmd_check)

    graph = commands.add_parser("graph", help="draw every transition as Mermaid or DOT")
    graph.add_argument("paths", nargs="+", metavar="PATH")
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    graph.set_defaults(handler=cmd_graph)

    run = commands.add_parser("run", help="run the bot (configuration from the environment)")
    run.add_argument("paths", nargs="*", default=["flows"], metavar="FLOWS")
    run.set_defaults(handler=cmd_run)

    play = commands.add_parser("play", help="chat with the flows in this terminal")
    play.add_argument("paths", nargs="*", default=["flows"], metavar="FLOWS")
    play.add_argument("--lang", default="en", help="the player's Telegram language (picks the locale)")
    play.set_defaults(handler=cmd_play)

    migrate = commands.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    migrate.set_defaults(handler=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"flowgram: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
