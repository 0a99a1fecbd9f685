"""One version string: pyproject.toml defines it, CMake compiles it into _core, and
nncore.__version__ and an installed distribution's metadata both report it."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import re

import nncore
from conftest import ROOT, missing
from nncore import _core


def pyproject_version() -> str:
    path = ROOT / "pyproject.toml"
    if not path.exists():
        missing("pyproject.toml not beside the tests")
    # The [project] table's line; CMakeLists.txt reads the same line for builds outside pip.
    m = re.search(r'^version = "([^"]+)"$', path.read_text(), re.MULTILINE)
    assert m, "pyproject.toml has no version line"
    return m.group(1)


def test_version_is_pyprojects():
    # A mismatch means the compiled module is older than pyproject.toml: rebuild it.
    assert _core.__version__ == pyproject_version()
    assert nncore.__version__ == _core.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", nncore.__version__)


def test_show_config_reports_version(capsys):
    assert nncore.show_config()["version"] == _core.__version__
    assert _core.__version__ in capsys.readouterr().out


def test_installed_metadata_agrees():
    # When the nncore imported is an installed distribution, its metadata carries the same version.
    # tools/test_wheel.sh sets NNCORE_TEST_INSTALLED=1: then testing anything else (a source tree
    # on sys.path) is an error, not a skip.
    required = os.environ.get("NNCORE_TEST_INSTALLED") == "1"
    init = pathlib.Path(nncore.__file__).resolve()
    try:
        dist = importlib.metadata.distribution("nncore")
        installed = pathlib.Path(dist.locate_file("nncore/__init__.py")).resolve() == init
    except importlib.metadata.PackageNotFoundError:
        installed = False
    if not installed:
        assert not required, f"NNCORE_TEST_INSTALLED=1 but nncore was imported from {init}"
        missing("the imported nncore is not an installed distribution (dev tree)")
    assert dist.version == nncore.__version__
