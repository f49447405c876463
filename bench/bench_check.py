"""How long `flowgram check` takes as a bot grows: 250, 1,000 and 4,000 states.

Generates realistic flows in a temporary directory — flows of 50 states, each
state with an i18n `say`, 2-3 button rows (one leading to another flow), a
validated text input and a fallback; every fifth state a charged Kie
generation with all its outcome branches, every tenth a button list; two
locales with every key — then times `load_project` + `check_project` (best
of 3) and compares the time per state with the 250-state run.

    python bench/bench_check.py [STATES ...]      # default: 250 1000 4000

Target: under 1 s for 1,000 states, and no worse than linear.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from engine.actions.registry import load_registry
from engine.checks import check_project, gc_paused
from engine.language import Severity, load_project

STATES_PER_FLOW = 50
SIZES = (250, 1000, 4000)


def flow_yaml(flow: int, flows: int) -> tuple[str, dict[str, str]]:
    """One flow file and the messages it uses."""
    name = f"f{flow}"
    messages: dict[str, str] = {}
    lines = [
        f"flow: {name}",
        "start: s0",
        "vars:",
        f"  answer_{flow}: \"\"",
        "default: {say: common.use_buttons, to: s0}",
        "states:",
    ]
    for i in range(STATES_PER_FLOW):
        nxt, prev = (i + 1) % STATES_PER_FLOW, (i - 1) % STATES_PER_FLOW
        key = f"{name}.s{i}"
        messages[key] = f"Step {i} of flow {flow}, {{user.first_name}}. Your answer so far: {{answer_{flow}}}."
        lines += [f"  s{i}:", f"    say: {key}"]
        if i % 5 == 4:  # a paid generation
            messages[f"{name}.s{i}_failed"] = "It failed; your {charge.amount} credits are back (balance {charge.balance})."
            lines += [
                "    do: kie.generate",
                f"    with: {{model: flux, input: {{prompt: \"{{answer_{flow}}}\"}}}}",
                "    charge: \"{price}\"",
                "    outcomes:",
                f"      success: s{nxt}",
                f"      failed: {{say: {name}.s{i}_failed, to: s{prev}}}",
                f"      rejected: {{say: {name}.s{i}_failed, to: s{prev}}}",
                f"      timeout: {{say: {name}.s{i}_failed, to: s{prev}}}",
                "      insufficient_funds: {say: common.no_funds, to: main.menu}",
                "    fallback: {say: common.wait}",
            ]
            continue
        other = f"f{(flow + 1) % flows}.s0" if flows > 1 else "main.menu"
        messages[f"{name}.s{i}_next"] = f"Next ({i + 1})"
        lines += [
            "    buttons:",
            f"      - [{{text: {name}.s{i}_next, to: s{nxt}}}, {{text: common.back, to: s{prev}}}]",
            f"      - [{{text: common.other, to: {other}}}, {{text: common.menu, to: main.menu}}]",
        ]
        if i % 3 == 0:
            lines.append(f"      - [{{text: common.skip, to: s{nxt}, if: \"answer_{flow} != ''\"}}]")
        if i % 10 == 0:
            lines += [
                "    list:",
                "      from: list.items",
                "      with: {items: [{id: a, title: Alpha}, {id: b, title: Beta}, {id: c, title: Gamma}]}",
                f"      button: {{text: \"{{item.title}}\", to: s{nxt}, set: {{answer_{flow}: \"{{item.id}}\"}}}}",
                "      columns: 2",
            ]
        lines += [
            "    on:",
            "      text:",
            f"        set: {{answer_{flow}: \"{{input.text}}\"}}",
            f"        to: s{nxt}",
            "        validate: {min_length: 1, max_length: 200, pattern: \"^[^/]\"}",
            "        invalid: {say: common.too_long}",
            "    fallback: {say: common.use_buttons}",
        ]
    return "\n".join(lines) + "\n", messages


def write_project(folder: Path, states: int) -> None:
    flows = max(1, states // STATES_PER_FLOW)
    messages = {
        "common.use_buttons": "Please use the buttons.",
        "common.back": "« Back",
        "common.menu": "Menu",
        "common.other": "Elsewhere",
        "common.skip": "Skip",
        "common.too_long": "Up to 200 characters, please.",
        "common.wait": "Still working on it.",
        "common.no_funds": "You need {charge.amount} credits but have {charge.balance}.",
        "common.cancelled": "Cancelled.",
        "main.menu": "Menu. Balance: {balance}.",
        "main.help": "Help.",
    }
    for flow in range(flows):
        text, used = flow_yaml(flow, flows)
        (folder / f"f{flow}.yaml").write_text(text, "utf-8")
        messages.update(used)
    (folder / "main.yaml").write_text(
        "flow: main\nstart: menu\nvars:\n  balance: 0\n  price: 5\n"
        "default: {say: common.use_buttons, to: menu}\nstates:\n"
        "  menu:\n    say: main.menu\n    buttons:\n"
        + "".join(f"      - [{{text: \"Flow {f}\", to: f{f}.s0}}]\n" for f in range(min(flows, 90)))
        + "  help:\n    say: main.help\n    buttons:\n      - [{text: common.menu, to: menu}]\n",
        "utf-8",
    )
    (folder / "bot.yaml").write_text(
        "bot: bench\nstart: main.menu\ndefault_locale: en\ncommands:\n  /start: main.menu\n  /help: main.help\n"
        "  /cancel: {to: main.menu, say: common.cancelled}\n  /paysupport: main.help\n",
        "utf-8",
    )
    locales = folder / "locales"
    locales.mkdir()
    for language in ("en", "ru"):
        body = "".join(f"  {key}: {_quote(text)}\n" for key, text in sorted(messages.items()))
        (locales / f"{language}.yaml").write_text(f"locale: {language}\nmessages:\n{_flat_to_nested(body)}", "utf-8")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flat_to_nested(body: str) -> str:
    """Dotted keys -> nested YAML mappings (locale files nest by section)."""
    tree: dict = {}
    for line in body.splitlines():
        key, _, value = line.strip().partition(": ")
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    out: list[str] = []

    def emit(node: dict, depth: int) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                out.append("  " * depth + f"{key}:")
                emit(value, depth + 1)
            else:
                out.append("  " * depth + f"{key}: {value}")

    emit(tree, 1)
    return "\n".join(out) + "\n"


def measure(states: int, registry, paused: bool, repeat: int = 3) -> tuple[float, float, int, int]:
    """(best load seconds, best check seconds, states checked, errors) for a generated project."""
    with tempfile.TemporaryDirectory(prefix="flowgram-bench-") as tmp:
        folder = Path(tmp)
        write_project(folder, states)
        best_load = best_check = float("inf")
        for _ in range(repeat):
            gc.collect()
            with gc_paused() if paused else nullcontext():
                started = time.perf_counter()
                project, loaded = load_project([folder])
                loaded_at = time.perf_counter()
                findings = check_project(project, registry)
                done = time.perf_counter()
            best_load = min(best_load, loaded_at - started)
            best_check = min(best_check, done - loaded_at)
        problems = [f for f in loaded + findings if f.severity is Severity.ERROR]
        if problems:
            print("\n".join(str(p) for p in problems[:10]), file=sys.stderr)
        return best_load, best_check, len(project.states), len(problems)


def main(argv: list[str]) -> int:
    sizes = [int(arg) for arg in argv] or list(SIZES)
    registry = load_registry()
    for paused in (False, True):
        print("with the garbage collector paused (engine.checks.gc_paused, as for a CLI run):" if paused
              else "as library calls (garbage collector running):")
        print(f"{'states':>7}  {'load s':>7}  {'check s':>7}  {'total s':>7}  {'ms/state':>8}  {'vs first':>8}  errors")
        baseline = None
        for size in sizes:
            load, check, states, errors = measure(size, registry, paused)
            total = load + check
            per_state = total / states
            baseline = baseline or per_state
            print(f"{states:>7}  {load:>7.3f}  {check:>7.3f}  {total:>7.3f}  {per_state * 1000:>8.3f}  "
                  f"{per_state / baseline:>7.2f}x  {errors}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
