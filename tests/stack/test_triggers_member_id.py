"""The stack gives its trigger matcher a static member id of its home, as its executor.

A killed matcher's restart waited out the dead one's session (8 s in the chaos run)
before it got the entity events' partitions back; with the same id it takes them at once.
"""

from __future__ import annotations

from pathlib import Path

from switchyard.cli.stack.full import local_settings
from switchyard.schemas.settings import Settings


def test_the_stack_gives_its_trigger_matcher_a_static_member_id_of_its_home(
    tmp_path: Path,
) -> None:
    first = local_settings(Settings(home=tmp_path / "a")).triggers_instance_id
    assert first is not None
    assert first.startswith("triggers-")
    assert local_settings(Settings(home=tmp_path / "a")).triggers_instance_id == first
    assert local_settings(Settings(home=tmp_path / "b")).triggers_instance_id != first
    chosen = Settings(home=tmp_path / "a", triggers_instance_id="mine")
    assert local_settings(chosen).triggers_instance_id == "mine"
