"""Load a whole bot from files and directories into one `Project`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from engine.language.compiler import compile_bot, compile_flow, compile_locale
from engine.language.findings import Finding, error
from engine.language.model import Position, Project
from engine.language.schema import file_kind, validate_file
from engine.language.source import SourceFile, read_yaml_file

YAML_SUFFIXES = (".yaml", ".yml")
# Files of these kinds live next to flows but are not part of the bot itself.
IGNORED_KINDS = ("tests",)


class PathError(Exception):
    """A path given on the command line does not exist or cannot be listed."""


def collect_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """YAML files named directly, or found recursively under directories, in a stable order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            try:
                found = sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
            except OSError as exc:
                raise PathError(f"{path}: cannot list the directory: {exc.strerror or exc}") from None
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise PathError(f"{path}: not a file or directory")
        else:
            raise PathError(f"{path}: no such file or directory")
    unique: dict[Path, Path] = {}
    for file in files:  # a file named twice (directly and via its directory) is read once
        unique.setdefault(file.resolve(), file)
    return list(unique.values())


def load_sources(files: Iterable[Path]) -> tuple[list[SourceFile], list[Finding], set[str]]:
    """Parsed, schema-valid sources; findings; and the kinds of the files that were broken."""
    sources: list[SourceFile] = []
    findings: list[Finding] = []
    broken_kinds: set[str] = set()
    for file in files:
        source, problems = read_yaml_file(file, shown_as=str(file))
        findings.extend(problems)
        if source is None:
            broken_kinds.add("unknown")
            continue
        if isinstance(source.data, dict) and any(kind in source.data for kind in IGNORED_KINDS) \
                and file_kind(source.data) is None:
            continue
        shape = validate_file(source)
        findings.extend(shape)
        if not shape and not problems:
            sources.append(source)
        else:
            broken_kinds.add(file_kind(source.data) or "unknown")
    return sources, findings, broken_kinds


def load_project(paths: Sequence[str | os.PathLike[str]]) -> tuple[Project, list[Finding]]:
    """Read, validate and compile; raises PathError only for paths that do not exist."""
    files = collect_files(paths)
    sources, findings, broken_kinds = load_sources(files)
    project = Project(files=[str(f) for f in files])
    for source in sources:
        kind = file_kind(source.data)
        if kind == "bot":
            bot = compile_bot(source)
            if project.bot is not None:
                findings.append(error(bot.position, "duplicate-bot",
                                      f"a second bot manifest (the first is {project.bot.file})"))
                continue
            project.bot = bot
        elif kind == "flow":
            flow, variables = compile_flow(source)
            if flow.name in project.flows:
                findings.append(error(flow.position, "duplicate-flow",
                                      f"flow '{flow.name}' is already defined in {project.flows[flow.name].file}"))
                continue
            project.flows[flow.name] = flow
            for variable in variables:
                first = project.variables.get(variable.name)
                if first is not None and first.default != variable.default:
                    findings.append(error(variable.position, "duplicate-variable",
                                          f"variable '{variable.name}' is declared again with another default "
                                          f"(first at {first.position})"))
                    continue
                project.variables.setdefault(variable.name, variable)
        elif kind == "locale":
            locale = compile_locale(source)
            if locale.language in project.locales:
                findings.append(error(locale.position, "duplicate-locale",
                                      f"locale '{locale.language}' is already defined in "
                                      f"{project.locales[locale.language].file}"))
                continue
            project.locales[locale.language] = locale
    # A broken file may have been the manifest: then its own finding says enough.
    if project.bot is None and not broken_kinds & {"bot", "unknown"}:
        where = Position(project.files[0], 1, 1) if project.files else Position("<paths>", 1, 1)
        findings.append(error(where, "missing-bot", "no bot manifest (a file with 'bot:') among the given paths"))
    return project, findings
