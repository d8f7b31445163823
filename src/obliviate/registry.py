"""Registry of plug-ins: methods, metrics, attacks, benchmarks and forget-set selectors.

Every plug-in is registered with its provenance (paper title, arXiv id, reference code), the
modalities it applies to and what it needs (a retain set, a reference model, labels ...).
`obliviate ls`, the docs and the report's citations are generated from these records.

Third-party packages add plug-ins through the entry-point groups ``obliviate.methods``,
``obliviate.metrics``, ``obliviate.attacks``, ``obliviate.benchmarks`` and
``obliviate.selectors``: each entry point names a module that registers on import.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable, TypeVar

from obliviate.errors import ObliviateError

KINDS = ("method", "metric", "attack", "benchmark", "selector")

# Modules that register the built-in plug-ins; imported lazily on first lookup so that
# `import obliviate` stays cheap.
_BUILTIN_MODULES = {
    "method": ("obliviate.methods.llm", "obliviate.methods.vision"),
    "metric": ("obliviate.metrics",),
    "attack": ("obliviate.attacks",),
    "benchmark": ("obliviate.benchmarks",),
    "selector": ("obliviate.methods.selection",),
}
_ENTRY_POINT_GROUP = {
    "method": "obliviate.methods",
    "metric": "obliviate.metrics",
    "attack": "obliviate.attacks",
    "benchmark": "obliviate.benchmarks",
    "selector": "obliviate.selectors",
}


@dataclass(frozen=True)
class PluginInfo:
    """One registered plug-in and its provenance."""

    kind: str
    name: str
    obj: Any
    paper: str = ""
    arxiv: str = ""
    code: str = ""
    modalities: tuple[str, ...] = ("text",)
    needs: tuple[str, ...] = ()
    summary: str = ""
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        """JSON-friendly description (what `obliviate ls --json` prints)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "paper": self.paper,
            "arxiv": self.arxiv,
            "code": self.code,
            "modalities": list(self.modalities),
            "needs": list(self.needs),
            "summary": self.summary,
        }


_REGISTRY: dict[str, dict[str, PluginInfo]] = {k: {} for k in KINDS}
_LOADED: set[str] = set()

T = TypeVar("T")


class UnknownPluginError(ObliviateError, KeyError):
    """Raised for a name that is not registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0])


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown plug-in kind {kind!r}; expected one of {', '.join(KINDS)}")


def register(
    kind: str,
    name: str,
    *,
    paper: str = "",
    arxiv: str = "",
    code: str = "",
    modalities: Iterable[str] = ("text",),
    needs: Iterable[str] = (),
    summary: str = "",
    **extra: Any,
) -> Callable[[T], T]:
    """Decorator registering ``obj`` under ``(kind, name)`` with its provenance.

    Registering the same name twice with a different object is an error: two plug-ins
    would silently shadow each other.
    """
    _check_kind(kind)

    def deco(obj: T) -> T:
        existing = _REGISTRY[kind].get(name)
        if existing is not None and existing.obj is not obj:
            same_source = getattr(existing.obj, "__qualname__", None) == getattr(obj, "__qualname__", None) and getattr(
                existing.obj, "__module__", None
            ) == getattr(obj, "__module__", None)
            if not same_source:  # a module re-import is fine, a clash is not
                raise ValueError(f"{kind} {name!r} is already registered by {existing.obj!r}")
        _REGISTRY[kind][name] = PluginInfo(
            kind=kind,
            name=name,
            obj=obj,
            paper=paper,
            arxiv=arxiv,
            code=code,
            modalities=tuple(modalities),
            needs=tuple(needs),
            summary=summary or (obj.__doc__ or "").strip().split("\n")[0],
            extra=dict(extra),
        )
        return obj

    return deco


def _load(kind: str) -> None:
    if kind in _LOADED:
        return
    _LOADED.add(kind)
    for module in _BUILTIN_MODULES[kind]:
        importlib.import_module(module)
    for ep in entry_points(group=_ENTRY_POINT_GROUP[kind]):
        ep.load()


def get(kind: str, name: str) -> PluginInfo:
    """Look up a plug-in; an unknown name raises with the closest registered names."""
    _check_kind(kind)
    _load(kind)
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        known = sorted(_REGISTRY[kind])
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownPluginError(
            f"unknown {kind} {name!r}.{hint} Registered {kind}s: {', '.join(known) or '(none)'}. "
            f"Run `obliviate ls` to see them with their papers."
        ) from None


def names(kind: str, modality: str | None = None) -> list[str]:
    """Sorted names of the registered plug-ins of one kind (optionally one modality)."""
    _check_kind(kind)
    _load(kind)
    return sorted(n for n, p in _REGISTRY[kind].items() if modality is None or modality in p.modalities)


def plugins(kind: str | None = None) -> list[PluginInfo]:
    """All plug-in records, of one kind or of every kind."""
    kinds = KINDS if kind is None else (kind,)
    out: list[PluginInfo] = []
    for k in kinds:
        _check_kind(k)
        _load(k)
        out.extend(_REGISTRY[k][n] for n in sorted(_REGISTRY[k]))
    return out
