"""The distribution installs every top-level folder under the switchyard namespace."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.conftest import REPO

FOLDERS = ("schemas", "topics", "engine", "consumers", "bridge", "cli")


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        "switchyard." + ".".join(init.parent.relative_to(REPO).parts)
        for folder in FOLDERS
        for init in (REPO / folder).rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
    assert {config["package-dir"][f"switchyard.{f}"] for f in FOLDERS} == set(FOLDERS)


def test_every_data_folder_is_listed_so_setuptools_does_not_warn() -> None:
    """A folder of files without __init__.py (the Lua scripts, the web UI) is still a
    package to setuptools: unlisted, every install prints "Package would be ignored"."""
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *FOLDERS],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    folders = {Path(name).parent for name in tracked if Path(name).parent.parts[0] in FOLDERS}
    on_disk = {"switchyard." + ".".join(folder.parts) for folder in folders}
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"


def test_namespace_imports_and_bare_folder_imports_fail_outside_the_repo(tmp_path: Path) -> None:
    code = (
        "import importlib, sys\n"
        "import switchyard.engine, switchyard.schemas, switchyard.cli.main\n"
        "for bare in ('engine', 'schemas', 'topics', 'consumers', 'bridge', 'cli'):\n"
        "    try:\n"
        "        importlib.import_module(bare)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    sys.exit(f'bare import {bare} worked')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_the_wheel_carries_every_file_of_the_packages(tmp_path: Path) -> None:
    """A non-editable install (the Docker image) must have the Lua scripts and the rest."""
    # Built from a copy of the source files: a build/ folder in the checkout would
    # otherwise leak files of an earlier build into the wheel.
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    source = tmp_path / "src"
    for name in listed:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    # The build says nothing (the first impression of scripts/up): no deprecation of
    # the license table, no data folder that "would be ignored".
    assert "warning" not in result.stderr.lower(), result.stderr[-2000:]
    [wheel] = tmp_path.glob("switchyard-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "switchyard/" + path.relative_to(REPO).as_posix()
        for folder in FOLDERS
        for path in (REPO / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert expected - shipped == set()
