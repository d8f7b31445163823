"""The versioned JSON report every command writes, written atomically."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


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

    kind: str  # "audit" | "bench" | "demo"
    task: dict[str, Any]
    reference: str | None = None
    models: dict[str, ModelEntry] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)  # extra tables (attacks, scalability ...)
    citations: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    versions: dict[str, str] = field(default_factory=versions)
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
        }

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


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write strict JSON (NaN as null) to a temp file in the same folder, then rename: readers never
    see half a file. The file gets the permissions the user's umask gives."""
    from obliviate.outputs import apply_umask

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dumps_strict(obj))
        apply_umask(tmp)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def load_report(path: str | os.PathLike) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: report schema {data.get('schema_version')} is not supported "
                         f"(this obliviate reads schema {SCHEMA_VERSION})")
    return data
