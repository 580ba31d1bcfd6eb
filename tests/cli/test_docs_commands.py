"""Every command README.md and docs/*.md print runs as printed, in a fresh copy of the repository.

Each block of commands stands alone: its lines run in order, through the
installed ``kvmgen`` on ``PATH``, in its own copy of the tracked files (a fresh
clone, made a git repository as a clone is), so later lines use what earlier ones
wrote; blocks run side by side. A command is a ``$ ...`` line of a ``console``
block (pipelines included) or a line of a ``sh`` block. It must exit with the code
the page gives it (``# exits N`` at the end of the line), else 0, and never with a
traceback. ``sudo`` lines (the real-kernel probe) and ``make`` lines (the README's
set-up, which is what the test suite is) are not run here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))]
EXITS = re.compile(r"#\s*exits (\d+)")
SHELL_TIMEOUT = 300

pytestmark = pytest.mark.usefixtures("warm_engine")


Command = tuple[str, int]


def blocks(page: str) -> list[list[Command]]:
    """Each block's ``(command, expected exit code)`` lines, in order; empty blocks left out."""
    text = (ROOT / page).read_text(encoding="utf-8")
    out = []
    for kind, block in re.findall(r"```(console|sh)\n(.*?)```", text, flags=re.S):
        found: list[Command] = []
        for line in block.splitlines():
            if kind == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.split()[0] in ("sudo", "make"):
                continue
            code = EXITS.search(line)
            command = re.split(r"\s+#", line)[0].strip()
            found.append((command, int(code[1]) if code else 0))
        if found:
            out.append(found)
    return out


def commands(page: str) -> list[Command]:
    """Every runnable line of ``page``, in order."""
    return [command for block in blocks(page) for command in block]


def test_every_page_with_kvmgen_commands_is_found():
    found = {page for page in PAGES if any(c.startswith("kvmgen ") for c, _ in commands(page))}
    assert {"README.md", "docs/analysis.md", "docs/ci-gate.md", "docs/importers.md"} <= found
    assert (
        "kvmgen replay traces/seed-stale-gen0.yaml --era E4 --bias none --fail-on harmful",
        1,
    ) in (commands("README.md"))


def _fresh_copy(target: Path) -> Path:
    """The repository's tracked files, copied as a clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git = ["git", "-c", "user.name=kvmgen", "-c", "user.email=kvmgen@invalid"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
        subprocess.run([*git, *step], cwd=target, check=True, capture_output=True)
    return target


def _run_block(where: Path, block: list[Command]) -> list[str]:
    """Run one block's lines in order in a fresh copy at ``where``; the failures."""
    repo = _fresh_copy(where)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["GITHUB_STEP_SUMMARY"] = str(where / "step-summary.md")
    env.pop("COLUMNS", None)
    failures = []
    for command, expected in block:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=SHELL_TIMEOUT,
        )
        if done.returncode != expected or "Traceback" in done.stderr:
            tail = done.stderr.strip().splitlines()[-3:]
            failures.append(f"{command!r}: exit {done.returncode}, expected {expected}: {tail}")
    return failures


def test_documented_commands_run_as_printed(tmp_path):
    """Each block of each page in its own fresh copy (blocks stand alone), several at once."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [
        (f"{page} block {n + 1}", block) for page in PAGES for n, block in enumerate(blocks(page))
    ]
    jobs.sort(key=lambda job: -len(job[1]))  # the longest first: the pool ends sooner
    workers = max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(workers) as pool:
        found = pool.map(lambda n: _run_block(tmp_path / f"copy{n}", jobs[n][1]), range(len(jobs)))
        failures = [f"{jobs[n][0]}: {f}" for n, block in enumerate(found) for f in block]
    assert not failures, "\n".join(failures)
