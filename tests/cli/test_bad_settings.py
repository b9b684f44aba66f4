"""A bad ``SWITCHYARD_*`` value stops any command with exit 2 and one line naming the
variable, its value and what it should be: no traceback."""

from __future__ import annotations

import pytest

from switchyard.cli.main import main


def test_a_bad_setting_is_named_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHYARD_DURABILITY", "fast")
    monkeypatch.setenv("SWITCHYARD_INBOX_PARTITIONS", "twelve")
    assert main(["stack", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("switchyard: ")
    assert "SWITCHYARD_DURABILITY='fast': Input should be 'default' or 'durable'" in err
    assert "SWITCHYARD_INBOX_PARTITIONS='twelve': Input should be a valid integer" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
