"""Loading configs strictly: YAML files and dotted overrides into the tree (unknown key or wrong type = an error
naming the field), presets first, older schemas migrated."""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from rlearly.config import tree
from rlearly.config.tree import PRESETS, Config
from rlearly.errors import ConfigError

# Keys renamed by the schema that renamed them: {schema: {old dotted key: new dotted key}}. A file of schema s
# is migrated through every entry above s, in order.
MIGRATIONS: dict[int, dict[str, str]] = {}


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None,
                preset: str | None = None) -> Config:
    """Resolve a Config: defaults <- preset <- YAML file <- overrides (dotted `a.b=v` strings or a dict)."""
    raw = migrate(read_yaml_mapping(path, "config"), path) if path is not None else {}
    for key, value in _overrides_to_pairs(overrides):
        _check_not_renamed(key)
        _set_dotted(raw, key, value)
    name = preset or raw.get("preset", "small")
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    merged = _deep_merge(PRESETS[name], raw)
    merged["preset"] = name
    return from_dict(Config, merged)


def migrate(raw: dict, where="config") -> dict:
    """A config mapping of its recorded schema (none: 1) brought to tree.SCHEMA: renamed keys moved, in order."""
    schema = raw.pop("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or not 1 <= schema <= tree.SCHEMA:
        raise ConfigError(f"{where}: config schema {schema!r} is not one this rlearly reads (1 to {tree.SCHEMA}); "
                          "a newer rlearly wrote it")
    for version in range(schema + 1, tree.SCHEMA + 1):
        for old, new in MIGRATIONS.get(version, {}).items():
            value = _pop_dotted(raw, old)
            if value is not _MISSING:
                _set_dotted(raw, new, value)
    return raw


def stored_schema(path: str | Path) -> int:
    """The schema a config file was written under (1 when it records none)."""
    return read_yaml_mapping(path, "config").get("schema", 1)


_MISSING = object()


def _pop_dotted(raw: dict, key: str):
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node.get(part)
        if not isinstance(node, dict):
            return _MISSING
    return node.pop(last, _MISSING)


def _check_not_renamed(key: str) -> None:
    for version, renames in MIGRATIONS.items():
        if key in renames:
            raise ConfigError(f"config key '{key}' was renamed to '{renames[key]}' (config schema {version})")


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """A YAML file holding a mapping; a missing file, bad YAML or another type is one clear error."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)  # where the parser stopped (lines and columns from 1)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{p} is not valid YAML{where}: {what}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p} must hold a mapping of {what} keys, got {type(raw).__name__}")
    return raw


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a dict, strictly: unknown keys and wrong types name the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean '{prefix}{close[0]}'? " if close else ""
            raise ConfigError(f"unknown config key '{prefix}{key}' ({hint}known in {prefix.rstrip('.') or 'top level'}: "
                              f"{', '.join(sorted(names))})")
    kwargs = {k: _coerce(hints[k], v, f"{prefix}{k}") for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp, value, name: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, name + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, name)
            except ConfigError:
                pass
        raise ConfigError(f"config key '{name}' has wrong type: expected {tp}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"config key '{name}' must be one of {typing.get_args(tp)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{name}' must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{name}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str):  # PyYAML reads 2e6 (no dot) as a string
                try:
                    value = float(value)
                except ValueError:
                    pass
            if isinstance(value, float) and value.is_integer():  # 3.0e6 in YAML is a float
                return int(value)
            raise ConfigError(f"config key '{name}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{name}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{name}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"config key '{name}': unsupported type {tp}")  # a bug in the config tree, not input


def _overrides_to_pairs(overrides) -> list[tuple[str, Any]]:
    if not overrides:
        return []
    if isinstance(overrides, dict):
        return list(overrides.items())
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        pairs.append((key.strip(), value))
    return pairs


def _set_dotted(raw: dict, key: str, value) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _deep_merge(base: dict, top: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

