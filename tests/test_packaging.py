"""What the distribution ships besides code: its licence, its type hints, one version."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import otel_coldstart

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_the_licence_the_metadata_names_is_shipped() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_type_hints_are_published() -> None:
    # PEP 561: without the marker, users' type checkers ignore our hints.
    assert (Path(otel_coldstart.__file__).parent / "py.typed").is_file()


def test_the_version_is_written_once() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"] and pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "otel_coldstart/version.py"
    assert importlib.metadata.version("otel-coldstart") == otel_coldstart.__version__
