"""The `flowgram` command as users and CI call it: exit codes, formats, run, play."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"


def flowgram(*args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def broken_flows(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    shutil.copytree(FLOWS, target)
    main = target / "main.yaml"
    main.write_text(main.read_text().replace("to: ask_name}", "to: ask_nmae}"), encoding="utf-8")
    return target


def test_check_passes_the_shipped_flows():
    result = flowgram("check", "flows")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stderr


def test_check_reports_file_line_and_exits_1(broken_flows: Path):
    result = flowgram("check", str(broken_flows))
    assert result.returncode == 1
    typo_line = next(n for n, text in enumerate((broken_flows / "main.yaml").read_text().splitlines(), 1)
                     if "ask_nmae" in text)
    line = next(l for l in result.stdout.splitlines() if "unknown-state" in l)
    path, lineno, column, rest = line.split(":", 3)
    assert path.endswith("main.yaml") and int(lineno) == typo_line and int(column) > 0
    assert "ask_nmae" in rest and "ask_name" in rest  # names the typo and suggests the real state


def test_check_json_and_github_formats(broken_flows: Path):
    as_json = json.loads(flowgram("check", str(broken_flows), "--format", "json").stdout)
    assert {"file", "line", "column", "severity", "code", "message"} <= set(as_json[0])
    github = flowgram("check", str(broken_flows), "--format", "github").stdout
    assert github.startswith("::error file=") and "title=unknown-state" in github


def test_check_missing_path_is_a_usage_error():
    result = flowgram("check", "no/such/dir")
    assert result.returncode == 2
    assert "no such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_matrix_names_the_rule_for_every_cell():
    result = flowgram("check", "flows", "--matrix")
    assert result.returncode == 0
    assert "generate.ask_prompt" in result.stdout and "pre_checkout_query" in result.stdout


def test_graph_draws_every_transition_in_mermaid_and_dot():
    mermaid = flowgram("graph", "flows").stdout
    assert mermaid.startswith("flowchart TD")
    assert 'generate__run -->|"kie.generate: insufficient_funds"| generate__no_funds' in mermaid
    dot = flowgram("graph", "flows", "--format", "dot").stdout
    assert dot.startswith("digraph flowgram {") and '"generate.run" -> "generate.no_funds"' in dot


def test_play_is_scriptable_through_stdin():
    result = flowgram("play", "flows", stdin="3\n/help\n9\n:quit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "bot: [photo] Hi, Player!" in out
    assert "[1] 🎨 Generate" in out
    assert "bot: This demo shows every construct" in out
    assert "there is no button 9" in out


def test_run_without_a_token_says_so():
    result = flowgram("run", "flows", env={"TELEGRAM_BOT_TOKEN": ""})
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in result.stderr and "Traceback" not in result.stderr


def test_run_with_an_unreachable_database_says_so():
    result = flowgram("run", "flows", env={"TELEGRAM_BOT_TOKEN": "123456:TEST",
                                           "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"})
    assert result.returncode == 2
    assert "cannot reach PostgreSQL at 127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr


def test_run_with_a_malformed_api_url_says_so():
    result = flowgram("run", "flows", env={"TELEGRAM_BOT_TOKEN": "123456:TEST", "TELEGRAM_API_URL": "localhost"})
    assert result.returncode == 2 and "TELEGRAM_API_URL must be an http(s) URL" in result.stderr


async def test_run_serves_users_through_a_telegram_api_url_and_stops_cleanly(tmp_path: Path):
    from engine.testing import FakeTelegram

    async with FakeTelegram() as telegram:
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.base_url,
               "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engine.cli", "run", "flows", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            user = telegram.user(first_name="Ann")
            await user.send_command("start")
            menu = await user.wait_reply(timeout=30)
            assert menu.content.startswith("Hi, Ann!")
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stderr.decode()
        log = stderr.decode()
        assert "running @flowgram_test_bot" in log and "stopped" in log


def test_migrate_applies_once_then_reports_up_to_date(tmp_path: Path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}"}
    first = flowgram("migrate", env=env)
    assert first.returncode == 0 and first.stdout.startswith("applied: 0001")
    again = flowgram("migrate", env=env)
    assert again.returncode == 0 and "up to date" in again.stdout
