"""Dataclass configs <-> dicts / YAML presets, with type-checked overrides.

The dataclass is the single source of truth for defaults. Presets are serialised dataclasses;
an unknown key or a value of the wrong type is an error that names the key and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from obliviate.errors import ObliviateError


def digest(obj: Any, n: int = 12) -> str:
    """A short stable hash of a JSON-able object (a recipe, settings, a method config): a cache key."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


class ConfigError(ObliviateError, ValueError):
    """A config key or value that does not fit its dataclass."""


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {key}={value!r} does not match {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {key}={value!r} must be one of {list(args)}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} expects a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[float, float]: that many, each its type
            if len(value) != len(args):
                raise ConfigError(f"{where}: {key} expects {len(args)} values, got {value!r}")
            return tuple(_coerce(v, a, key, where) for v, a in zip(value, args))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, key, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} expects a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: {key} expects true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {key} expects an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: {key} expects an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {key} expects a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: {key} expects a number, got {value!r}")
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} expects a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} expects a mapping of {tp.__name__} fields, got {value!r}")
        return build_dataclass(tp, value, where=f"{where}.{key}")
    return value


def check_fields(cls: type, overrides: dict, *, where: str = "config") -> dict:
    """``overrides`` checked against ``cls``'s fields (unknown keys, types) and coerced to them,
    without building the dataclass (ranges are checked when it is built from every source)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), list(fields), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"{where}: unknown key {k!r}.{hint} Valid keys: {', '.join(sorted(fields))}."
        )
    return {k: _coerce(v, hints[k], k, where) for k, v in overrides.items()}


def build_dataclass(cls: type, overrides: dict, *, where: str = "config") -> Any:
    """Instantiate ``cls`` from its defaults plus ``overrides``; unknown keys and bad types raise."""
    return cls(**check_fields(cls, overrides, where=where))


def to_dict(cfg: Any) -> dict:
    """Plain-data form of a config dataclass (tuples become lists), for YAML and reports."""
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(cfg)


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with the file named in any error."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {p} is a folder; give a YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; save the config file as UTF-8") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


# The sections of a run config file, as the shipped presets are written (``presets/<benchmark>/<method>.yaml``).
RUN_CONFIG_SECTIONS = ("method", "train", "notes")


def load_run_config(path: str | Path) -> dict:
    """A run config file: a YAML mapping with a ``method:`` section (method config fields), a
    ``train:`` section (TrainConfig fields) and optional ``notes:``, the format of the shipped
    presets. Sections are checked here (names, mappings); their keys and types are checked
    against the dataclasses by `build_dataclass`, with this file named in every error."""
    p = Path(path)
    data = load_yaml(p)
    unknown = [k for k in data if k not in RUN_CONFIG_SECTIONS]
    if unknown:
        k = str(unknown[0])
        close = difflib.get_close_matches(k, RUN_CONFIG_SECTIONS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{p}: unknown top-level key {k!r}.{hint} A config file has the sections "
                          "method: (the method's options), train: (training options) and notes:")
    for section in ("method", "train"):
        value = data.get(section)
        if value is None:
            data.pop(section, None)
        elif not isinstance(value, dict):
            raise ConfigError(f"{p}: {section}: must be a mapping of option: value, got {value!r}")
        elif any(not isinstance(k, str) for k in value):
            raise ConfigError(f"{p}: {section}: option names must be strings, got {sorted(map(repr, value))}")
    return data
