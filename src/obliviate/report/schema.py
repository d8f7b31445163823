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


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON to a temp file in the same folder, then rename: readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, default=_default)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def load_report(path: str | os.PathLike) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: report schema {data.get('schema_version')} is not supported "
                         f"(this obliviate reads schema {SCHEMA_VERSION})")
    return data
