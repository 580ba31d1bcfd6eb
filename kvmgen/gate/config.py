"""Gate settings from ``[tool.kvmgen.check]`` in pyproject.toml or a ``--config`` YAML file.

Without ``--config``, kvmgen looks in the working directory and its parents for
the nearest ``pyproject.toml`` that has a ``[tool.kvmgen.check]`` table (as pytest
and ruff find theirs); ``--no-config`` skips that. A YAML file holds the same
keys at its top level. Relative paths in a config file are relative to the file.
The command line wins over every key it sets.
"""

from __future__ import annotations

import glob
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvmgen.errors import UsageError
from kvmgen.gate.limits import MAX, MAX_REGRESSION, Number, limits_from_mapping

TABLE = ("tool", "kvmgen", "check")
KEYS: tuple[str, ...] = (
    "traces",
    "kernel",
    "era",
    "bias",
    "address_spaces",
    "costs",
    "max",
    "max_regression",
    "baseline",
    "allow_changed_traces",
)


@dataclass(frozen=True)
class GateConfig:
    """Settings read from a config file; empty when there is none."""

    source: str | None = None
    traces: tuple[str, ...] = ()
    kernels: tuple[str, ...] = ()
    eras: tuple[str, ...] = ()
    biases: tuple[str, ...] = ()
    address_spaces: int | None = None
    costs: str | None = None
    max: dict[str, Number] = field(default_factory=dict)
    max_regression: dict[str, Number] = field(default_factory=dict)
    baseline: str | None = None
    allow_changed_traces: bool = False


def _display(path: Path, cwd: Path) -> str:
    """``path`` relative to the working directory (absolute only across drives)."""
    try:
        return os.path.relpath(path, cwd)
    except ValueError:
        return str(path)


def _read_toml(path: Path, cwd: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise UsageError(f"{_display(path, cwd)}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{_display(path, cwd)}: not valid TOML: {exc}") from None
    node: Any = data
    for key in TABLE:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if not isinstance(node, dict):
        raise UsageError(f"{_display(path, cwd)}: [tool.kvmgen.check] must be a table")
    return node


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` with a ``[tool.kvmgen.check]`` table."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and _read_toml(candidate, start) is not None:
            return candidate
    return None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise UsageError(f"{where}: expected a string or a list of strings, got {item!r}")
        out.append(str(item))
    return tuple(out)


def _path(value: Any, where: str, base: Path, cwd: Path) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{where}: expected a path, got {value!r}")
    return _display(Path(os.path.normpath(base / value)), cwd)


def _traces(value: Any, where: str, base: Path, cwd: Path) -> tuple[str, ...]:
    out: list[str] = []
    for pattern in _strings(value, where):
        full = os.path.normpath(base / pattern)
        if glob.has_magic(pattern):
            found = sorted(glob.glob(full))
            if not found:
                raise UsageError(f"{where}: {pattern!r} matches no file")
            out.extend(_display(Path(p), cwd) for p in found)
        else:
            out.append(_display(Path(full), cwd))
    return tuple(out)


def _mapping(value: Any, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a table of METRIC = VALUE")
    return value


def parse_config(data: Mapping[str, Any], source: str, base: Path, cwd: Path) -> GateConfig:
    """Validate a config mapping; every problem is a one-line usage error naming ``source``."""
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise UsageError(f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(KEYS)}")

    def where(key: str) -> str:
        return f"{source}: {key}"

    address_spaces = data.get("address_spaces")
    if address_spaces is not None and (
        isinstance(address_spaces, bool) or address_spaces not in (1, 2)
    ):
        raise UsageError(f"{where('address_spaces')}: expected 1 or 2, got {address_spaces!r}")
    allow = data.get("allow_changed_traces", False)
    if not isinstance(allow, bool):
        raise UsageError(f"{where('allow_changed_traces')}: expected true or false")
    return GateConfig(
        source=source,
        traces=_traces(data["traces"], where("traces"), base, cwd) if "traces" in data else (),
        kernels=_strings(data["kernel"], where("kernel")) if "kernel" in data else (),
        eras=_strings(data["era"], where("era")) if "era" in data else (),
        biases=_strings(data["bias"], where("bias")) if "bias" in data else (),
        address_spaces=address_spaces,
        costs=_path(data["costs"], where("costs"), base, cwd) if "costs" in data else None,
        max=limits_from_mapping(_mapping(data.get("max", {}), where("max")), MAX, where("max")),
        max_regression=limits_from_mapping(
            _mapping(data.get("max_regression", {}), where("max_regression")),
            MAX_REGRESSION,
            where("max_regression"),
        ),
        baseline=_path(data["baseline"], where("baseline"), base, cwd)
        if "baseline" in data
        else None,
        allow_changed_traces=allow,
    )


def load_config(path: str | None, *, discover: bool = True, cwd: Path | None = None) -> GateConfig:
    """The gate config: ``path`` (YAML, or a TOML file's ``[tool.kvmgen.check]``),
    else the nearest pyproject.toml's table when ``discover``, else an empty config.
    """
    cwd = (cwd or Path.cwd()).resolve()
    if path is None:
        found = find_pyproject(cwd) if discover else None
        if found is None:
            return GateConfig()
        table = _read_toml(found, cwd) or {}
        source = f"{_display(found, cwd)} [tool.kvmgen.check]"
        return parse_config(table, source, found.parent, cwd)
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--config {path}: no such file")
    base = file.resolve().parent
    if file.suffix.lower() == ".toml":
        found_table = _read_toml(file, cwd)
        if found_table is None:
            raise UsageError(f"{path}: no [tool.kvmgen.check] table")
        return parse_config(found_table, f"{path} [tool.kvmgen.check]", base, cwd)
    import yaml  # deferred: only needed with a YAML config

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UsageError(f"{path}{line}: not valid YAML") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of settings ({', '.join(KEYS)})")
    return parse_config(data, path, base, cwd)
