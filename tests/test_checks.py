"""The semantic checks of `flowgram check`: one small broken bot per check, each finding at its exact place.

Every fixture under tests/fixtures/checks/<name>/ is the tiny valid bot of
`base/` with one mistake. The table says which findings it must produce —
exactly those, so a check that also reports a cascade (silence after an
unknown state, say) fails here too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.actions.builtin import builtin_actions
from engine.actions.registry import ActionRegistry, load_registry
from engine.actions.spec import ActionResult, ActionSpec, OutcomeKind
from engine.checks import CODES, MatrixCell, SilenceMatrix, check_paths, check_project, silence_matrix
from engine.checks.codes import LOADER_CODES, codes_table
from engine.language import Severity, load_project
from engine.language.callback_data import MAX_BYTES, decode, encode, worst_case_length
from engine.language.model import INPUT_KINDS
from integrations.kie.actions import actions as kie_actions

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "checks"
SHIPPED = ROOT / "flows"


async def _echo(context, params):  # pragma: no cover - never run by the checker
    return ActionResult("ok", outputs={"echoed": params.get("text")})


ECHO = ActionSpec(
    name="test.echo",
    handler=_echo,
    params={"type": "object", "properties": {"text": {"type": "string"}}, "additionalProperties": False},
    outcomes={"ok": OutcomeKind.SUCCESS, "failed": OutcomeKind.FAILURE},
    outputs=("echoed",),
)
REGISTRY = ActionRegistry([*builtin_actions(), *kie_actions(), ECHO])

# fixture directory, code, where ("file:line:col", relative to the fixture), in report order.
CASES = [
    ("unknown-state", "unknown-state", ["main.yaml:10:35"]),
    ("unknown-state-in-bot", "unknown-state", ["bot.yaml:6:10"]),
    ("unknown-state-flow-start", "unknown-state", ["main.yaml:2:8"]),
    ("unknown-action", "unknown-action", ["main.yaml:17:9"]),
    ("bad-action-params", "bad-action-params", ["main.yaml:22:13"]),
    ("list-action-misuse", "list-action-misuse", ["main.yaml:17:9"]),
    ("unknown-item-field", "unknown-item-field", ["main.yaml:20:22"]),
    ("item-outside-list", "unknown-variable", ["main.yaml:16:10"]),
    ("undeclared-outcome", "undeclared-outcome", ["main.yaml:19:49"]),
    ("unbranched-outcome", "unbranched-outcome", ["main.yaml:17:9"]),
    ("charge-not-allowed", "charge-not-allowed", ["main.yaml:20:13"]),
    ("refund-not-told", "refund-not-told", ["main.yaml:22:15", "main.yaml:24:16"]),
    ("silent-wait", "silent-wait", ["main.yaml:15:3"]),
    ("unknown-i18n-key", "unknown-i18n-key", ["main.yaml:12:10"]),
    ("unknown-i18n-key-no-locales", "unknown-i18n-key",
     ["bot.yaml:7:33", "main.yaml:5:16", "main.yaml:8:10", "main.yaml:10:17", "main.yaml:12:10", "main.yaml:14:17"]),
    ("missing-locale", "missing-locale", ["bot.yaml:3:17"]),
    ("unused-i18n-key", "unused-i18n-key", ["locales/en.yaml:11:15"]),
    ("unknown-variable", "unknown-variable", ["main.yaml:10:46"]),
    ("unknown-variable-in-locale", "unknown-variable", ["locales/en.yaml:10:11"]),
    ("input-outside-handler", "unknown-variable", ["main.yaml:10:46"]),
    ("bad-template", "bad-template", ["main.yaml:10:46"]),
    ("bad-condition", "bad-condition", ["main.yaml:10:45"]),
    ("undeclared-variable", "undeclared-variable", ["main.yaml:10:47"]),
    ("bad-pattern", "bad-pattern", ["main.yaml:21:29"]),
    ("bad-validation", "bad-validation", ["main.yaml:21:19"]),
    ("unreachable-state", "unreachable-state", ["main.yaml:15:3"]),
    ("trap-state", "trap-state", ["main.yaml:15:3"]),
    ("callback-data-too-long", "callback-data-too-long", ["long.yaml:5:3"]),
    ("text-too-long", "text-too-long", ["locales/en.yaml:10:11"]),
    ("caption-too-long", "caption-too-long", ["main.yaml:12:10"]),
    ("keyboard-too-wide", "keyboard-too-wide", ["main.yaml:10:203"]),
    ("keyboard-too-large", "keyboard-too-large", ["main.yaml:15:3"]),
    ("button-text-too-long", "button-text-too-long", ["main.yaml:14:48"]),
    ("duplicate-button", "duplicate-button", ["main.yaml:15:17"]),
    ("missing-command", "missing-command", ["bot.yaml:4:1"]),
    ("missing-paysupport", "missing-paysupport", ["bot.yaml:4:1"]),
    ("silent-state", "silent-state", ["main.yaml:15:3"]),
    ("silent-input", "silent-input", ["main.yaml:7:3"]),
]

LOADER_CASES = [
    ("loader-yaml-syntax", "yaml-syntax", "main.yaml:11:3"),
    ("loader-empty-file", "empty-file", "extra.yaml:1:1"),
    ("loader-schema", "schema", "main.yaml:13:5"),
    ("loader-duplicate-key", "duplicate-key", "main.yaml:15:3"),
    ("loader-missing-bot", "missing-bot", "locales/en.yaml:1:1"),
]


def where(finding, base: Path) -> str:
    return f"{Path(finding.position.file).relative_to(base).as_posix()}:{finding.position.line}:{finding.position.column}"


def report(findings) -> str:
    return "\n".join(str(f) for f in findings) or "(no findings)"


def check_fixture(name: str):
    project, loaded = load_project([FIXTURES / name])
    assert loaded == [], f"fixture {name} must load cleanly:\n{report(loaded)}"
    return check_project(project, REGISTRY)


@pytest.mark.parametrize("fixture", ["base", "templated-params"])
def test_clean_fixture_has_no_findings(fixture):
    """`base` is what every other fixture breaks; `templated-params` passes a {placeholder} where the action's
    schema wants a list: a value known only at run time is not judged."""
    findings = check_fixture(fixture)
    assert findings == [], report(findings)


@pytest.mark.parametrize("fixture, code, expected", CASES, ids=[case[0] for case in CASES])
def test_check_reports_exactly_at(fixture, code, expected):
    findings = check_fixture(fixture)
    got = [(f.code, where(f, FIXTURES / fixture)) for f in findings]
    assert got == [(code, position) for position in expected], report(findings)
    assert all(f.severity is CODES[code][0] for f in findings)


def test_every_code_has_a_fixture():
    tested = {code for _, code, _ in CASES} | {"internal-error"}
    assert tested == set(CODES)


def test_codes_table_lists_every_code():
    table = codes_table()
    for code in [*CODES, *LOADER_CODES]:
        assert f"`{code}`" in table


# ---- messages say what is wrong and how to fix it -----------------------------------------------------------


def message(fixture: str) -> str:
    return check_fixture(fixture)[0].message


def test_unknown_state_suggests_the_closest_state():
    assert message("unknown-state") == (
        "button 'main.to_help' of state 'main.menu' goes to 'main.hepl', which is not a state; "
        "did you mean 'main.help'?"
    )
    assert "write it with its flow: 'main.help'" in message("unknown-state-in-bot")


def test_unknown_action_suggests_the_closest_action():
    assert "did you mean 'test.echo'?" in message("unknown-action")


def test_refund_not_told_names_outcome_target_and_locale():
    assert message("refund-not-told") == (
        "outcome 'failed' of the charged step 'main.run' leads to 'main.failed', whose text (locale ru) does not "
        "tell the user what happened to the money: mention {charge.amount}"
    )


def test_missing_translation_names_the_locale():
    text = message("unknown-i18n-key")
    assert "missing in locale 'ru'" in text and "exists in en" in text


def test_silent_input_explains_the_loop():
    text = message("silent-input")
    assert text.startswith("state 'main.menu' answers the button 'Ping'")
    assert "a loop of action states that say nothing" in text


def test_item_and_input_fields_are_contextual():
    assert "only in the button of a `list:`" in message("item-outside-list")
    assert "only while answering an input" in message("input-outside-handler")
    assert "have no field 'name' (they have: id, title, note)" in message("unknown-item-field")


# ---- the shipped bot -----------------------------------------------------------------------------------------


def test_shipped_flows_have_no_errors():
    project, findings = check_paths([SHIPPED], load_registry())
    errors = [f for f in findings if f.severity is Severity.ERROR]
    warnings = [f for f in findings if f.severity is Severity.WARNING]
    assert errors == [], "errors:\n" + report(errors) + "\nwarnings:\n" + report(warnings)
    assert project.bot is not None and len(project.states) > 5


def test_shipped_flows_are_silent_nowhere():
    project, _ = load_project([SHIPPED])
    matrix = silence_matrix(project, load_registry())
    assert isinstance(matrix, SilenceMatrix)
    assert matrix.kinds == INPUT_KINDS
    assert list(matrix.rows) == list(project.states)
    for name, cells in matrix.rows.items():
        assert [cell.kind for cell in cells] == list(INPUT_KINDS)
        assert all(isinstance(cell, MatrixCell) and cell.state == name for cell in cells)
        assert all(cell.visible for cell in cells), [c for c in cells if not c.visible]


def test_matrix_rules_read_like_the_resolution_order():
    project, _ = load_project([SHIPPED])
    rows = silence_matrix(project, load_registry()).rows
    cell = {c.kind: c for c in rows["main.ask_name"]}
    assert cell["text"].rule == "state on.text -> main.greet; invalid: state on.text.invalid: say main.bad_name"
    assert cell["command"].rule.endswith("/skip: state on./skip -> main.home")
    assert cell["command"].short == "fb+1"
    menu = {c.kind: c for c in rows["main.menu"]}
    assert menu["photo"].rule == "flow default (main): say common.use_buttons -> main.home"
    assert menu["photo"].position is not None and menu["photo"].position.file.endswith("main.yaml")
    assert {c.kind: c for c in rows["generate.run"]}["button"].rule == "n/a: no buttons"
    assert menu["stale_button"].rule.startswith("engine:")


def test_matrix_renders_text_and_json():
    project, _ = load_project([SHIPPED])
    matrix = silence_matrix(project, load_registry())
    text = matrix.render_text()
    assert "0 silent cells" in text and "legend:" in text
    table = text.split("\n\n")[1].splitlines()
    assert len(table) == 2 + len(project.states)
    assert len({len(line) for line in table[:2]}) == 1  # header and rule line up
    data = json.loads(json.dumps(matrix.to_json()))
    assert data["kinds"] == list(INPUT_KINDS) and data["silent"] == 0
    assert data["states"]["main.menu"][0]["kind"] == "text"


def test_matrix_marks_silent_cells():
    project, _ = load_project([FIXTURES / "silent-input"])
    matrix = silence_matrix(project, REGISTRY)
    button = {c.kind: c for c in matrix.rows["main.menu"]}["button"]
    assert not button.visible and button.short == "btn!" and "loop" in button.why
    assert "1 silent cell" in matrix.render_text() and "silent cells:" in matrix.render_text()


# ---- no cascades ------------------------------------------------------------------------------------------------


def test_loader_errors_are_not_followed_by_semantic_cascades():
    _, findings = check_paths([FIXTURES / "loader-schema"], REGISTRY)
    assert [f.code for f in findings] == ["schema"]


def test_unknown_target_is_not_also_silent_or_a_trap():
    codes = {f.code for f in check_fixture("unknown-state")}
    assert codes == {"unknown-state"}


# ---- the loader's own findings ------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture, code, expected", LOADER_CASES, ids=[case[1] for case in LOADER_CASES])
def test_loader_reports_at(fixture, code, expected):
    _, findings = load_project([FIXTURES / fixture])
    errors = [(f.code, where(f, FIXTURES / fixture)) for f in findings if f.severity is Severity.ERROR]
    assert errors == [(code, expected)], report(findings)


def test_binary_garbage_is_unreadable_not_a_crash(tmp_path):
    for file in (FIXTURES / "base").rglob("*.yaml"):
        target = tmp_path / file.relative_to(FIXTURES / "base")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.read_bytes())
    (tmp_path / "garbage.yaml").write_bytes(b"flow: x\n\x00\x01\x02\xff\xfe binary")
    (tmp_path / "latin1.yaml").write_bytes("flow: caf\xe9\n".encode("latin-1"))
    _, findings = check_paths([tmp_path], REGISTRY)
    got = sorted((f.code, Path(f.position.file).name, f.position.line) for f in findings)
    assert got == [("unreadable-file", "garbage.yaml", 2), ("unreadable-file", "latin1.yaml", 1)], report(findings)


# ---- callback data, as the checker assumes it -------------------------------------------------------------------


def test_callback_worst_case_matches_the_encoding():
    project, _ = load_project([SHIPPED])
    for name, state in project.states.items():
        version = project.flow_of(name).version
        data = encode(version, name, "i99999")
        assert decode(data) is not None and decode(data).state == name
        assert worst_case_length(version, name, has_list=True) == len(data.encode())
        assert worst_case_length(version, name, rows=1, columns=1, has_list=True) <= MAX_BYTES
