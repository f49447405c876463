"""The flow language: YAML sources with positions, the schema, and the compiled model.

`load_project(paths)` is the single entry point: it reads files and
directories, validates each file against ``flows.schema.json`` and compiles
the valid ones into a :class:`~engine.language.model.Project`. Problems are
returned as findings, never raised, so one broken file does not hide the rest.
"""

from engine.language.findings import Finding, Severity
from engine.language.model import Position, Project
from engine.language.project import load_project

__all__ = ["Finding", "Position", "Project", "Severity", "load_project"]
