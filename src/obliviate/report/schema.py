"""The versioned JSON report every command writes, written atomically and validated on read.

Schema history: 1 = the first reports (no provenance); 2 adds ``provenance`` (command, git commit,
working directory) and the optional ``verdict`` block that `write_report` stores beside the
results. Both are read; anything else is refused with the file and the problem named."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.errors import ObliviateError

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)  # schema 1 files lack provenance; they read with an empty one

KINDS = ("audit", "bench", "demo", "run")  # "run": an unlearning run's card, before any audit
ROLES = ("target", "oracle", "unlearned", "attacked")
DIRECTIONS = ("higher", "lower", "closer_to_zero", "closer_to_reference")


class ReportError(ObliviateError, ValueError):
    """A report JSON that cannot be read: not JSON, an unsupported schema, or a malformed field."""


def _git_commit(where: Path) -> dict[str, Any]:
    """The git commit (and whether the tree has local changes) of the repository holding ``where``;
    empty when git or a repository is not there."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": dirty, "repository": git("rev-parse", "--show-toplevel")}


def provenance() -> dict[str, Any]:
    """How this report was made: the command line (``obliviate ...`` or the Python script), the working
    directory, and the git commit of the working directory and of obliviate's own source, where they
    are git repositories."""
    import shlex
    import sys

    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("obliviate", "__main__.py"):
        argv[0] = "obliviate"
    out: dict[str, Any] = {"command": shlex.join(argv) if argv and argv[0] else "(interactive Python)",
                           "cwd": os.getcwd()}
    cwd_git = _git_commit(Path.cwd())
    src_git = _git_commit(Path(__file__).resolve().parent)
    if cwd_git:
        out["git"] = cwd_git
    if src_git and src_git != cwd_git:
        out["obliviate_git"] = src_git
    return out


def versions() -> dict[str, str]:
    """Versions of the packages that decide the numbers (recorded in every report)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("obliviate", "torch", "transformers", "accelerate", "peft", "numpy", "scipy", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


@dataclass
class ModelEntry:
    """One audited model: its metric results, skipped metrics (with why) and how it was made."""

    name: str
    metrics: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    run: dict[str, Any] | None = None  # RunLog of the unlearning run, method config, seconds
    role: str = "unlearned"  # "target" | "oracle" | "unlearned" | "attacked"


@dataclass
class Report:
    """Results of an audit or a benchmark comparison (schema ``SCHEMA_VERSION``)."""

    kind: str  # "audit" | "bench" | "demo" | "run"
    task: dict[str, Any]
    reference: str | None = None
    models: dict[str, ModelEntry] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)  # extra tables (attacks, scalability ...)
    citations: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    versions: dict[str, str] = field(default_factory=versions)
    provenance: dict[str, Any] = field(default_factory=provenance)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "kind": self.kind,
            "created": self.created,
            "versions": self.versions,
            "task": self.task,
            "reference": self.reference,
            "models": {k: m.__dict__ for k, m in self.models.items()},
            "tables": self.tables,
            "citations": self.citations,
            "notes": self.notes,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "report") -> "Report":
        """The Report of a dict that `validate_report` accepts (checked here; ``where`` names the source
        in errors)."""
        validate_report(data, where)
        models = {}
        for name, m in data["models"].items():
            models[name] = ModelEntry(name=m.get("name", name), metrics=m.get("metrics", {}),
                                      skipped=m.get("skipped", {}), run=m.get("run"), role=m.get("role", "unlearned"))
        return cls(kind=data["kind"], task=data["task"], reference=data.get("reference"), models=models,
                   tables=data.get("tables", {}), citations=data.get("citations", []), notes=data.get("notes", []),
                   created=data.get("created", ""), versions=data.get("versions", {}),
                   provenance=data.get("provenance", {}), schema_version=data["schema_version"])

    def value(self, model: str, metric: str) -> float | None:
        m = self.models[model].metrics.get(metric)
        return None if m is None else m["value"]


def strict_json(obj: Any) -> Any:
    """``obj`` as plain JSON data: NaN and infinities become null (JSON has no such numbers, and
    Python's bare ``NaN`` breaks other readers), numpy values become Python ones, tuples and sets
    lists, other objects their ``str``."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return strict_json(obj.tolist())
    if isinstance(obj, np.generic):
        return strict_json(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def dumps_strict(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` (see `strict_json`)."""
    return json.dumps(strict_json(obj), indent=indent, allow_nan=False)


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to a temp file in the same folder, then rename: readers never see half a file.
    The file gets the permissions the user's umask gives."""
    from obliviate.outputs import apply_umask

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        apply_umask(tmp)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write strict JSON (NaN as null) atomically (`write_text_atomic`)."""
    return write_text_atomic(dumps_strict(obj), path)


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def validate_report(data: Any, where: str = "report") -> None:
    """Check the shape of a report dict (schema `READABLE_SCHEMAS`); a `ReportError` names ``where``,
    the field (``models.npo.metrics.forget_quality.value``) and what was expected."""

    def bad(field_: str, expected: str, got: Any) -> ReportError:
        return ReportError(f"{where}: field {field_!r}: expected {expected}, got {_type_name(got)} "
                           f"{json.dumps(got)[:60] if not isinstance(got, (dict, list)) else ''}".rstrip())

    def need(obj: dict, key: str, types: tuple, expected: str, prefix: str = "", optional: bool = False) -> Any:
        if key not in obj:
            if optional:
                return None
            raise ReportError(f"{where}: field {prefix + key!r} is missing; this is not an obliviate report, or it is "
                              "damaged (regenerate it with the command that wrote it)")
        v = obj[key]
        if not isinstance(v, types) or isinstance(v, bool) and bool not in types:
            raise bad(prefix + key, expected, v)
        return v

    if not isinstance(data, dict):
        raise ReportError(f"{where}: a report is a JSON object, got {_type_name(data)}")
    version = data.get("schema_version")
    if version not in READABLE_SCHEMAS:
        what = "has no schema_version" if version is None else f"has schema_version {version!r}"
        newer = isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
        fix = ("upgrade obliviate to read it" if newer else
               "regenerate it with this obliviate (rerun the command that wrote it)")
        raise ReportError(f"{where}: {what}; this obliviate reads report schemas "
                          f"{', '.join(map(str, READABLE_SCHEMAS))}: {fix}")
    kind = need(data, "kind", (str,), "a string")
    if kind not in KINDS:
        raise ReportError(f"{where}: field 'kind': {kind!r} is not one of {', '.join(KINDS)}")
    need(data, "task", (dict,), "an object")
    need(data, "reference", (str, type(None)), "a string or null", optional=True)
    models = need(data, "models", (dict,), "an object of models")
    for name, m in models.items():
        p = f"models.{name}."
        if not isinstance(m, dict):
            raise bad(p[:-1], "an object", m)
        role = need(m, "role", (str,), "a string", p, optional=True)
        if role is not None and role not in ROLES:
            raise ReportError(f"{where}: field {p + 'role'!r}: {role!r} is not one of {', '.join(ROLES)}")
        need(m, "run", (dict, type(None)), "an object or null", p, optional=True)
        skipped = need(m, "skipped", (dict,), "an object of metric: reason", p, optional=True) or {}
        for k, v in skipped.items():
            if not isinstance(v, str):
                raise bad(f"{p}skipped.{k}", "a string (the reason)", v)
        for metric, r in (need(m, "metrics", (dict,), "an object of metrics", p, optional=True) or {}).items():
            q = f"{p}metrics.{metric}."
            if not isinstance(r, dict):
                raise bad(q[:-1], "an object (value, direction, ci, n)", r)
            need(r, "value", (int, float, type(None)), "a number or null", q)
            direction = need(r, "direction", (str,), "a string", q)
            if direction not in DIRECTIONS:
                raise ReportError(f"{where}: field {q + 'direction'!r}: {direction!r} is not one of "
                                  f"{', '.join(DIRECTIONS)}")
            ci = need(r, "ci", (list, type(None)), "[low, high] or null", q, optional=True)
            if ci is not None and (len(ci) != 2 or not all(isinstance(x, (int, float, type(None))) for x in ci)):
                raise bad(q + "ci", "[low, high] or null", ci)
    need(data, "tables", (dict,), "an object", optional=True)
    for key in ("citations", "notes"):
        need(data, key, (list,), "a list", optional=True)
    for key in ("versions", "provenance", "verdict"):
        need(data, key, (dict,), "an object", optional=True)


def load_report(path: str | os.PathLike) -> dict[str, Any]:
    """The report dict in ``path``, validated (`validate_report`); a `ReportError` names the file and the problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{p}: no such report file") from None
    except IsADirectoryError:
        raise ReportError(f"{p}: is a folder; give its report.json (or the folder to `obliviate report`)") from None
    except UnicodeDecodeError as e:
        raise ReportError(f"{p}: not a text file ({e.reason}); a report is JSON") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); the file is damaged "
                          "or is not an obliviate report") from None
    validate_report(data, str(p))
    return data


def read_report(path: str | os.PathLike) -> Report:
    """The `Report` in a report JSON file (validated; see `load_report`)."""
    return Report.from_dict(load_report(path), str(path))
