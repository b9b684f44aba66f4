"""setuptools' build backend, without its informational note on editable installs.

pip (25 and later) shows every warning a build backend emits. For an editable install
setuptools always emits ``InformationOnly("Editable installation.")``: a note, not a
problem, that says folders in the working directory may shadow the package. Ours are
the top-level folders, and ruff's banned-api rule already refuses their bare imports;
the note was the last line of noise before ``scripts/up``'s own output. Every other
warning, a deprecation included, still reaches the user.
"""

from __future__ import annotations

import warnings
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import (
    build_sdist,
    build_wheel,
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)
from setuptools.warnings import InformationOnly

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Editable installation", InformationOnly)
        name: str = build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
        return name
