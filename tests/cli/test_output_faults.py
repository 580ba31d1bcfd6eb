"""Every kind of output kvmgen writes, under every fault: one line, exit 2, nothing lost.

Faults: a missing directory, a directory in the way, a full disk (/dev/full, reached
through a symlink so the name keeps its suffix), the output being one of the inputs
(by name and by symlink), and standard output closed early (exit 141, no claim).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import TRACES

pytestmark = pytest.mark.usefixtures("warm_engine")

QEMU_LOG = TRACES / "qemu-smm.log"

# kind -> (argv with {out} and {trace}, suffix of the output, the input it reads or None)
KINDS = {
    "report": (["replay", "{trace}", "--json", "{out}", "-q"], ".json", "trace"),
    "events": (["replay", "{trace}", "--events", "{out}", "-q"], ".jsonl", "trace"),
    "compiled": (["compile", "{trace}", "-o", "{out}"], ".kvmc", "trace"),
    "imported": (["import", "qemu", "{log}", "-o", "{out}", "-q"], ".yaml", "log"),
    "generated": (["gen", "vga", "--duration", "1", "-o", "{out}", "-q"], ".yaml", None),
    "baseline": (
        ["check", "{trace}", "--max", "wraps=9", "--save-baseline", "{out}", "-q"],
        ".json",
        "trace",
    ),
    "markdown": (
        ["check", "{trace}", "--max", "wraps=9", "--markdown", "{out}", "-q"],
        ".md",
        "trace",
    ),
    "junit": (["check", "{trace}", "--max", "wraps=9", "--junit", "{out}", "-q"], ".xml", "trace"),
    "check-json": (
        ["check", "{trace}", "--max", "wraps=9", "--json", "{out}", "-q"],
        ".json",
        "trace",
    ),
    "plot": (["replay", "{trace}", "--plot", "{out}", "-q"], ".png", "trace"),
    "html": (["report", "{trace}", "-o", "{out}"], ".html", "trace"),
    "forecast": (["forecast", "--rate", "30/s", "--era", "E12", "--json", "{out}"], ".json", None),
    "sweep": (["sweep", "{trace}", "--bias", "0:20:10", "--json", "{out}"], ".json", "trace"),
    "sweep-plot": (["sweep", "{trace}", "--bias", "0:20:10", "--plot", "{out}"], ".svg", "trace"),
    "search": (
        [
            "search",
            "--kernel",
            "3.17",
            "--bias",
            "none",
            "--goal",
            "harmful",
            "--no-race",
            "-o",
            "{out}",
        ],
        ".yaml",
        None,
    ),
}
STDOUT_KINDS = ["report", "events", "compiled", "imported", "markdown", "check-json", "forecast"]


@pytest.fixture
def inputs(tmp_path):
    trace = tmp_path / "seed.yaml"
    shutil.copy(TRACES / "seed-stale-gen0.yaml", trace)
    log = tmp_path / "qemu.log"
    shutil.copy(QEMU_LOG, log)
    return {"trace": trace, "log": log}


def _argv(kind, out, inputs):
    argv, _, _ = KINDS[kind]
    return [part.format(out=out, trace=inputs["trace"], log=inputs["log"]) for part in argv]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_one_line(result, target):
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kvmgen: error: "), result.stderr
    assert str(target) in lines[0] or os.path.basename(str(target)) in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


@pytest.mark.parametrize("kind", KINDS)
def test_missing_directory(run_cli, tmp_path, inputs, kind):
    target = tmp_path / "nodir" / f"out{KINDS[kind][1]}"
    result = run_cli(*_argv(kind, target, inputs))
    _assert_one_line(result, target)
    assert "does not exist" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_directory_in_the_way(run_cli, tmp_path, inputs, kind):
    target = tmp_path / f"dir{KINDS[kind][1]}"
    target.mkdir()
    result = run_cli(*_argv(kind, target, inputs))
    _assert_one_line(result, target)
    assert "is a directory" in result.stderr and target.is_dir()


@pytest.mark.parametrize("kind", KINDS)
def test_full_disk(run_cli, tmp_path, inputs, kind):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this host")
    target = tmp_path / f"full{KINDS[kind][1]}"
    target.symlink_to("/dev/full")
    result = run_cli(*_argv(kind, target, inputs))
    _assert_one_line(result, target)
    assert "No space left on device" in result.stderr
    assert target.is_symlink() and os.path.realpath(target) == "/dev/full"


@pytest.mark.parametrize("kind", [k for k, (_, _, source) in KINDS.items() if source])
@pytest.mark.parametrize("via", ["same name", "symlink", "hard link"])
def test_output_is_an_input(run_cli, tmp_path, inputs, kind, via):
    if via == "same name" and kind in ("plot", "sweep-plot"):
        pytest.skip("a plot's name must end in .svg or .png, which a trace's does not")
    source = inputs[KINDS[kind][2]]
    before = _digest(source)
    target = source
    if via == "symlink":
        target = tmp_path / f"link{KINDS[kind][1]}"
        target.symlink_to(source)
    elif via == "hard link":
        target = tmp_path / f"hard{KINDS[kind][1]}"
        os.link(source, target)
    result = run_cli(*_argv(kind, target, inputs))
    _assert_one_line(result, target)
    assert "refusing to write over the input" in result.stderr
    assert _digest(source) == before and _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_good_output_replaces_the_file_whole(run_cli, tmp_path, inputs, kind):
    target = tmp_path / f"ok{KINDS[kind][1]}"
    target.write_text("old")
    result = run_cli(*_argv(kind, target, inputs))
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes() != b"old" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", STDOUT_KINDS)
def test_reader_leaving_early_ends_quietly(tmp_path, inputs, kind):
    argv = [sys.executable, "-m", "kvmgen", *_argv(kind, "-", inputs)]
    # Unbuffered: the reader takes exactly one byte and leaves the rest in the pipe.
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    ) as writer:
        assert writer.stdout is not None and writer.stderr is not None
        writer.stdout.read(1)
        writer.stdout.close()
        err = writer.stderr.read().decode()
        code = writer.wait(timeout=120)
    assert code == 141, err
    assert "Traceback" not in err and "compiled" not in err and "error" not in err


def test_a_reader_that_takes_everything_is_success(inputs):
    argv = [sys.executable, "-m", "kvmgen", *_argv("compiled", "-", inputs)]
    done = subprocess.run(argv, capture_output=True)
    assert done.returncode == 0 and done.stdout.startswith(b"KVMGENC")
    assert "compiled 7 events" in done.stderr.decode()


def test_stdout_on_a_full_disk(inputs):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this host")
    argv = [sys.executable, "-m", "kvmgen", *_argv("report", "-", inputs)]
    with open("/dev/full", "wb") as full:
        done = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "kvmgen: error: standard output: cannot write: No space left on device"
    )
