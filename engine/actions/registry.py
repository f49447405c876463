"""The action registry: how the engine (and the checker) find actions by name.

Integrations publish their actions through the `flowgram.actions` entry point
group (a callable returning ActionSpecs), so third-party packages plug in the
same way as ours. Tests build their own registry with `ActionRegistry([...])`.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Iterable, Iterator

from engine.actions.spec import ActionSpec, JobHandler

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "flowgram.actions"


class ActionRegistry:
    def __init__(self, specs: Iterable[ActionSpec] = ()) -> None:
        self._specs: dict[str, ActionSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ActionSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"action '{spec.name}' is registered twice")
        self._specs[spec.name] = spec

    def get(self, name: str) -> ActionSpec | None:
        return self._specs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ActionSpec]:
        return iter(self._specs.values())

    def names(self) -> list[str]:
        return sorted(self._specs)

    def job_kinds(self) -> dict[str, tuple[ActionSpec, JobHandler]]:
        """Every durable job kind, with the action that owns it and its handler."""
        kinds: dict[str, tuple[ActionSpec, JobHandler]] = {}
        for spec in self._specs.values():
            for kind, handler in spec.jobs.items():
                if kind in kinds:
                    raise ValueError(f"job kind '{kind}' is declared by {kinds[kind][0].name} and {spec.name}")
                kinds[kind] = (spec, handler)
        return kinds


def load_registry() -> ActionRegistry:
    """All actions installed: the engine's built-ins plus every `flowgram.actions` entry point."""
    from engine.actions.builtin import builtin_actions

    registry = ActionRegistry(builtin_actions())
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        provide = entry_point.load()
        for spec in provide():
            registry.register(spec)
    return registry
