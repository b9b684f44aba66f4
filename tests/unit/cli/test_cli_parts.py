"""The CLI's pure parts: the SSE parser, inputs, profiles and where progress goes."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchyard.cli import exits
from switchyard.cli.documents import parse_inputs
from switchyard.cli.exits import CliError
from switchyard.cli.follow import Changes, Message, messages
from switchyard.cli.output import Console, table
from switchyard.cli.profile import Profile, resolve, save


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_sse_messages_skip_comments_and_join_data_lines() -> None:
    stream = _lines(
        ": keep-alive", "",
        "id: 1", 'data: {"seq": 1,', 'data:  "kind": "run.created"}', "",
        ": keep-alive", "",
        "id: 2", "data: {}", "",
        "event: end", "data: {}", "",
    )  # fmt: skip
    got = [m async for m in messages(stream)]
    assert got == [
        Message("1", "message", '{"seq": 1,\n "kind": "run.created"}'),
        Message("2", "message", "{}"),
        Message("2", "end", "{}"),  # the id stays the last one given, as in the SSE spec
    ]


def test_changes_report_a_state_once_and_ignore_log_only_updates() -> None:
    changes = Changes()
    created = {"runId": "r", "nodeRunId": "n", "status": "IN_PROGRESS", "result": None}
    assert changes.moved(created)
    assert not changes.moved({**created, "kind": "nodeRun.updated"})  # logs only
    assert changes.moved({**created, "status": "COMPLETED", "result": "SUCCESS"})
    assert changes.moved({"runId": "r", "status": "IN_PROGRESS"})  # the run's own state


def test_changes_return_each_log_line_once() -> None:
    changes = Changes()
    first = {"nodeRuns": [{"identifier": "n", "nodeRunLogs": [{"log": "a"}]}]}
    second = {"nodeRuns": [{"identifier": "n", "nodeRunLogs": [{"log": "a"}, {"log": "b"}]}]}
    assert [entry["log"] for _, entry in changes.logs(first)] == ["a"]
    assert [entry["log"] for _, entry in changes.logs(second)] == ["b"]
    assert changes.logs(second) == []


def test_inputs_are_json_when_they_parse_and_flags_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps({"name": "file", "count": 1}))
    got = parse_inputs(["count=3", "dry=true", 'tags=["a"]', "note=hello world", "eq=a=b"],
                       str(path))  # fmt: skip
    assert got == {"name": "file", "count": 3, "dry": True, "tags": ["a"],
                   "note": "hello world", "eq": "a=b"}  # fmt: skip
    assert parse_inputs(None, None) is None
    with pytest.raises(CliError) as raised:
        parse_inputs(["=x"], None)
    assert raised.value.exit_code == exits.USAGE
    path.write_text("[1]")
    with pytest.raises(CliError, match=r"--inputs-file .*: must hold an object \(got list\)"):
        parse_inputs(None, str(path))


def test_flags_win_over_environment_over_the_profile_file(tmp_path: Path) -> None:
    env = {"SWITCHYARD_CLI_CONFIG": str(tmp_path / "p.json")}
    path = save(Profile("http://saved:1", "saved-id", "saved-secret"), "default", env)
    save(Profile("http://other:2", "other-id", "other-secret"), "other", env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(json.loads(path.read_text())["profiles"]) == {"default", "other"}

    def got(**flags: str | None) -> Profile:
        given: dict[str, str | None] = {
            "api_url": None, "client_id": None, "client_secret": None, "profile": None,
        }  # fmt: skip
        return resolve(**{**given, **flags}, env=env, default_url="http://local:8080")

    assert got() == Profile("http://saved:1", "saved-id", "saved-secret")
    assert got(profile="other").client_id == "other-id"
    env["SWITCHYARD_CLIENT_ID"] = "env-id"
    assert got().client_id == "env-id"
    assert got(client_id="flag-id").client_id == "flag-id"
    env["SWITCHYARD_CLI_CONFIG"] = str(tmp_path / "none.json")
    with pytest.raises(CliError) as raised:
        got()
    assert raised.value.exit_code == exits.NO_CREDENTIALS
    assert got(client_secret="s").api_url == "http://local:8080"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_goes_to_stderr_only_on_a_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    Console(out=out, err=err).progress("waiting")
    assert err.getvalue() == ""
    terminal = _Terminal()
    Console(out=out, err=terminal).progress("waiting")
    assert terminal.getvalue() == "waiting\n"
    assert out.getvalue() == ""


def test_tables_pad_columns_and_show_missing_values_as_dashes() -> None:
    assert table([("a", None), ("long", 3)], ("K", "VALUE")).splitlines() == [
        "K     VALUE",
        "a     -",
        "long  3",
    ]
