"""Every command the README shows works as printed."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = [
    line.removeprefix("$ ").split("  #")[0].strip()
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.S)
    for line in block.splitlines()
    if line.startswith("$ kvmgen")
]
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
# Commands that demonstrate a failing gate.
EXPECTED_CODE = {
    "kvmgen replay traces/seed-stale-gen0.yaml --era E4 --bias none --fail-on harmful": 1
}

pytestmark = pytest.mark.usefixtures("warm_engine")


def test_readme_shows_commands():
    assert len(COMMANDS) >= 6 and PYTHON_BLOCKS


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One directory for all README commands, in order: later ones use earlier outputs."""
    path = tmp_path_factory.mktemp("readme")
    (path / "traces").symlink_to(ROOT / "traces")
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command(command, workdir):
    argv = [sys.executable, "-m", "kvmgen", *shlex.split(command)[1:]]
    done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True)
    assert done.returncode == EXPECTED_CODE.get(command, 0), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("code", PYTHON_BLOCKS)
def test_readme_python(code):
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_readme_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"`make ([a-z-]+)", README):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target
