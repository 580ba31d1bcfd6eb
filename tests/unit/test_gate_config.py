"""[tool.kvmgen.check] in pyproject.toml and --config FILE.yaml."""

from __future__ import annotations

import pytest

from kvmgen.errors import UsageError
from kvmgen.gate.config import GateConfig, find_pyproject, load_config
from kvmgen.gate.metrics import METRICS

PYPROJECT = """
[project]
name = "vmm"

[tool.kvmgen.check]
traces = ["traces/*.yaml"]
kernel = "4.19"
bias = ["historical", "none"]
baseline = "ci/baseline.json"
allow_changed_traces = true

[tool.kvmgen.check.max]
harmful_stale_hits = 0
total_cycles = 2e9

[tool.kvmgen.check.max_regression]
all = 5
total_cycles = "10%"
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "traces").mkdir()
    for name in ("b.yaml", "a.yaml", "notes.txt"):
        (tmp_path / "traces" / name).write_text("kvmgen: 1\nevents: []\n")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    return tmp_path


def test_pyproject_table_is_found_from_a_subdirectory(project):
    assert find_pyproject(project / "sub" / "deeper") == project / "pyproject.toml"
    config = load_config(None, cwd=project / "sub" / "deeper")
    # paths are relative to pyproject.toml, shown relative to the working directory
    assert config.traces == ("../../traces/a.yaml", "../../traces/b.yaml")
    assert config.baseline == "../../ci/baseline.json"
    assert config.source == "../../pyproject.toml [tool.kvmgen.check]"


def test_pyproject_values(project):
    config = load_config(None, cwd=project)
    assert config.traces == ("traces/a.yaml", "traces/b.yaml")
    assert config.kernels == ("4.19",)
    assert config.biases == ("historical", "none")
    assert config.allow_changed_traces is True
    assert config.max == {"harmful_stale_hits": 0, "total_cycles": 2e9}
    assert config.max_regression["total_cycles"] == 10
    assert config.max_regression["wraps"] == 5
    assert set(config.max_regression) == set(METRICS)


def test_no_config_and_no_discovery(project, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    assert load_config(None, cwd=empty) == GateConfig()
    assert load_config(None, discover=False, cwd=project) == GateConfig()


def test_pyproject_without_the_table_is_skipped(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    assert find_pyproject(tmp_path) is None


def test_yaml_config(tmp_path):
    (tmp_path / "ci").mkdir()
    config_file = tmp_path / "ci" / "gate.yaml"
    config_file.write_text(
        "traces: [../t.yaml]\nera: [E5, E12]\nmax: {undetected_wraps: 0}\n"
        "max_regression: {sptes_dropped: 2.5}\ncosts: costs.yaml\n"
    )
    config = load_config(str(config_file), cwd=tmp_path)
    assert config.traces == ("t.yaml",)
    assert config.eras == ("E5", "E12")
    assert config.max == {"undetected_wraps": 0}
    assert config.max_regression == {"sptes_dropped": 2.5}
    assert config.costs == "ci/costs.yaml"


def test_toml_file_given_explicitly(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    config = load_config(str(project / "pyproject.toml"), cwd=elsewhere)
    assert config.max["harmful_stale_hits"] == 0
    bare = elsewhere / "other.toml"
    bare.write_text("[tool.other]\n")
    with pytest.raises(UsageError, match=r"no \[tool.kvmgen.check\] table"):
        load_config(str(bare), cwd=elsewhere)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("maxx: {wraps: 0}\n", "unknown key 'maxx'"),
        ("max: {harmful: 0}\n", "unknown metric 'harmful'"),
        ("max: [wraps]\n", "max: expected a table"),
        ("max: {wraps: -1}\n", "expected a number >= 0"),
        ("max: {wraps: true}\n", "expected a number >= 0"),
        ("address_spaces: 3\n", "address_spaces: expected 1 or 2"),
        ("allow_changed_traces: yes please\n", "expected true or false"),
        ("traces: ['nothing/*.yaml']\n", "matches no file"),
        ("kernel: {a: 1}\n", "expected a string"),
        ("- just a list\n", "expected a mapping"),
        ("max: {wraps: [\n", "not valid YAML"),
    ],
)
def test_yaml_config_errors_are_usage_errors(tmp_path, text, needle):
    config_file = tmp_path / "gate.yaml"
    config_file.write_text(text)
    with pytest.raises(UsageError, match=needle) as info:
        load_config(str(config_file), cwd=tmp_path)
    assert "\n" not in str(info.value)
    assert str(config_file) in str(info.value)


def test_broken_pyproject_is_a_usage_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.kvmgen.check\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(None, cwd=tmp_path)


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_config(str(tmp_path / "nope.yaml"), cwd=tmp_path)
