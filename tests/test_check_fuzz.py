"""Fuzz `flowgram check`: mutate the shipped flows at random; the checker must answer with findings, never crash.

Each example copies flows/ to a temporary directory, applies a few random
mutations — on the parsed data (delete keys, change types, swap or break
references, truncate texts, duplicate states, self-loops, shared YAML aliases)
or on the bytes (garbage, truncation) — and runs what `flowgram check` runs.
Bounded to a few seconds; set FLOWGRAM_FUZZ_EXAMPLES for a longer run.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.actions.registry import load_registry
from engine.checks import check_paths, check_project
from engine.language import Finding, Severity
from engine.language.source import FlowLoader

SHIPPED = Path(__file__).resolve().parent.parent / "flows"
FILES = sorted(p.relative_to(SHIPPED).as_posix() for p in SHIPPED.rglob("*.yaml"))
ORIGINAL = {name: (SHIPPED / name).read_text("utf-8") for name in FILES}
DATA = {name: yaml.load(text, Loader=FlowLoader) for name, text in ORIGINAL.items()}
REGISTRY = load_registry()
EXAMPLES = int(os.environ.get("FLOWGRAM_FUZZ_EXAMPLES", "60"))

DATA_MUTATIONS = ("delete", "retype", "swap", "retarget", "truncate", "duplicate_state", "self_loop", "alias",
                  "recursive_alias", "silent_action_loop")
BYTE_MUTATIONS = ("garbage", "cut", "indent", "nul")
# Mutations after which the checker must have something to say.
ALWAYS_FOUND = {"nul", "recursive_alias"}
WEIRD_VALUES = [None, 0, -1, 10**20, 3.5, True, "", "x" * 5000, "{", "{unknown.var}", "no.such.state", "/start",
                [], {}, [[]], {"to": "nowhere"}, "ü" * 70, "a" * 41]


def _paths(value: Any, prefix: tuple = (), active: frozenset[int] = frozenset()) -> list[tuple]:
    """Every path into a nested value (not the root); a value containing itself is not followed."""
    if id(value) in active:
        return []
    active = active | {id(value)}
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append(prefix + (key,))
            found.extend(_paths(item, prefix + (key,), active))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append(prefix + (index,))
            found.extend(_paths(item, prefix + (index,), active))
    return found


def _parent(root: Any, path: tuple) -> Any:
    for part in path[:-1]:
        root = root[part]
    return root


def _state_names(data: dict) -> list[str]:
    states = data.get("states") if isinstance(data, dict) else None
    return list(states) if isinstance(states, dict) else []


def mutate_data(data: Any, kind: str, rng: random.Random, names: list[str]) -> Any:
    paths = _paths(data)
    if not paths:
        return data
    path = rng.choice(paths)
    parent = _parent(data, path)
    if kind == "delete":
        del parent[path[-1]]
    elif kind == "retype":
        parent[path[-1]] = copy.deepcopy(rng.choice(WEIRD_VALUES))
    elif kind == "swap":
        other = rng.choice(paths)
        other_parent = _parent(data, other)
        if not (set(path) & set(other)) and path[:len(other)] != other and other[:len(path)] != path:
            parent[path[-1]], other_parent[other[-1]] = other_parent[other[-1]], parent[path[-1]]
    elif kind == "retarget":
        targets = [p for p in paths if p[-1] in ("to", "start") or (len(p) > 1 and p[-2] == "outcomes")]
        if targets:
            chosen = rng.choice(targets)
            _parent(data, chosen)[chosen[-1]] = rng.choice(names + ["nowhere", "main.nowhere", "x.y"])
    elif kind == "truncate":
        strings = [p for p in paths if isinstance(_parent(data, p)[p[-1]], str)]
        if strings:
            chosen = rng.choice(strings)
            value = _parent(data, chosen)[chosen[-1]]
            _parent(data, chosen)[chosen[-1]] = value[: rng.randrange(len(value) + 1)]
    elif kind in ("duplicate_state", "self_loop", "alias", "silent_action_loop") and _state_names(data):
        states = data["states"]
        name = rng.choice(list(states))
        if kind == "duplicate_state":
            states[f"{name}_copy"] = copy.deepcopy(states[name])
        elif kind == "self_loop":
            for p in sorted(_paths(states[name]), key=len, reverse=True):  # deepest first: parents stay
                if p[-1] == "to" or (len(p) > 1 and p[-2] == "outcomes"):
                    _parent(states[name], p)[p[-1]] = name
            states[name]["fallback"] = name
        elif kind == "alias":
            other = rng.choice(list(states))
            states[name] = states[other]  # the same object twice: the dumper writes an anchor and an alias
        else:
            states[name] = {"do": "kie.generate", "with": {"model": "m", "input": {}},
                            "outcomes": {"success": name, "failed": name, "rejected": name, "timeout": name}}
    elif kind == "recursive_alias" and isinstance(data, dict):
        data["states" if "states" in data else "messages"] = data  # a document that contains itself
    return data


def mutate_bytes(raw: bytes, kind: str, rng: random.Random) -> bytes:
    at = rng.randrange(len(raw) + 1)
    if kind == "garbage":
        return raw[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) + raw[at:]
    if kind == "cut":
        return raw[:at]
    if kind == "indent":
        lines = raw.split(b"\n")
        index = rng.randrange(len(lines))
        lines[index] = rng.choice([b"\t", b"   ", b"- ", b": ", b"&a ", b"*a ", b"!!python/object "]) + lines[index]
        return b"\n".join(lines)
    return raw[:at] + b"\x00" + raw[at:]  # nul


def assert_findings(findings: list[Finding], folder: str) -> None:
    assert isinstance(findings, list)
    for finding in findings:
        assert isinstance(finding, Finding)
        assert finding.code != "internal-error", str(finding)
        assert finding.position.line >= 1 and finding.position.column >= 1
        assert finding.severity in (Severity.ERROR, Severity.WARNING)
        assert finding.message


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    mutations=st.lists(
        st.tuples(st.sampled_from(FILES), st.sampled_from(DATA_MUTATIONS + BYTE_MUTATIONS)), min_size=1, max_size=4
    ),
)
def test_mutated_flows_never_crash_the_checker(seed: int, mutations: list[tuple[str, str]]) -> None:
    rng = random.Random(seed)
    data = copy.deepcopy(DATA)
    names = [f"{d['flow']}.{s}" for d in DATA.values() if isinstance(d, dict) and "flow" in d for s in _state_names(d)]
    data_kinds = [(f, k) for f, k in mutations if k in DATA_MUTATIONS]
    byte_kinds = [(f, k) for f, k in mutations if k in BYTE_MUTATIONS]
    for file, kind in data_kinds:
        data[file] = mutate_data(data[file], kind, rng, names)
    folder = tempfile.mkdtemp(prefix="flowgram-fuzz-")
    try:
        for file in FILES:
            target = Path(folder) / file
            target.parent.mkdir(parents=True, exist_ok=True)
            if any(f == file for f, _ in data_kinds):
                raw = yaml.safe_dump(data[file], allow_unicode=True, sort_keys=False).encode("utf-8")
            else:
                raw = ORIGINAL[file].encode("utf-8")
            for f, kind in byte_kinds:
                if f == file:
                    raw = mutate_bytes(raw, kind, rng)
            target.write_bytes(raw)

        project, findings = check_paths([folder], REGISTRY)  # what `flowgram check` runs
        assert_findings(findings, folder)
        if {kind for _, kind in mutations} & ALWAYS_FOUND:
            assert any(f.severity is Severity.ERROR for f in findings)

        # The semantic checks alone must also survive whatever part of the project did load
        # (check_paths skips them after a loading error).
        assert_findings(check_project(project, REGISTRY), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_fuzz_baseline_is_clean() -> None:
    """The unmutated copy passes, so every finding above comes from a mutation."""
    _, findings = check_paths([SHIPPED], REGISTRY)
    assert [f for f in findings if f.severity is Severity.ERROR] == []


# ---- the fast schema check agrees with jsonschema ----------------------------------------------------------------

from jsonschema import Draft202012Validator  # noqa: E402

import jsonschema_rs  # noqa: E402
from engine.language.schema import load_schema  # noqa: E402

SCHEMA = load_schema()
DEFS = sorted(SCHEMA["$defs"])


@lru_cache(maxsize=None)
def _fast(definition: str):
    """The jsonschema-rs yes/no check that `validate_file` trusts for valid files."""
    return jsonschema_rs.validator_for(
        {"$schema": SCHEMA["$schema"], "$ref": f"#/$defs/{definition}", "$defs": SCHEMA["$defs"]}).is_valid
# Words the schema cares about, so random values hit its branches (and near misses of them).
WORDS = ["to", "say", "set", "text", "url", "if", "validate", "invalid", "min_length", "max_length", "pattern",
         "from", "with", "button", "columns", "page_size", "do", "charge", "outcomes", "on", "fallback", "media",
         "photo", "buttons", "list", "flow", "start", "vars", "default", "states", "bot", "default_locale",
         "commands", "description", "locale", "messages", "successful_payment", "command", "/start", "/x_1",
         "menu", "main.menu", "a.b.c", "Main", "{price}", "{a.b}", "https://x.y", "tg://z", "en", "eng", "", "1"]
SCALARS = st.one_of(st.sampled_from(WORDS), st.integers(-2, 60), st.sampled_from([0.0, 1.0, 2.5, True, False, None]),
                    st.text(max_size=5))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(WORDS), inner, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=int(os.environ.get("FLOWGRAM_FUZZ_EXAMPLES", "60")) * 5, deadline=None)
@given(definition=st.sampled_from(DEFS), value=VALUES)
def test_fast_schema_check_agrees_with_jsonschema(definition: str, value: Any) -> None:
    fast = _fast(definition)
    exact = Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": SCHEMA["$defs"]})
    assert fast(value) == exact.is_valid(value), (definition, value)


@settings(max_examples=EXAMPLES, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), file=st.sampled_from(FILES),
       kinds=st.lists(st.sampled_from(("delete", "retype", "swap", "truncate", "duplicate_state")), max_size=3))
def test_fast_schema_check_agrees_on_mutated_files(seed: int, file: str, kinds: list[str]) -> None:
    rng = random.Random(seed)
    data = copy.deepcopy(DATA[file])
    for kind in kinds:
        data = mutate_data(data, kind, rng, ["main.menu"])
    kind = next(k for k in ("bot", "flow", "locale") if k in DATA[file])
    fast = _fast(f"{kind}File")
    exact = Draft202012Validator({"$ref": f"#/$defs/{kind}File", "$defs": SCHEMA["$defs"]})
    assert fast(data) == exact.is_valid(data)
