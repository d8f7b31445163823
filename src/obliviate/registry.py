"""Registry of plug-ins: methods, metrics, attacks, benchmarks and forget-set selectors.

Every plug-in is registered with its provenance (paper title, arXiv id, reference code), the
modalities it applies to and what it needs (a retain set, a reference model, labels ...).
`obliviate ls`, the docs and the report's citations are generated from these records.

Where plug-ins come from:

- **Built-in**: a ``register(...)`` call at import time in any module of the plug-in packages
  (``_PLUGIN_PACKAGES``: ``obliviate.methods``, ``metrics``, ``attacks``, ``benchmarks``, ``auditing``,
  searched recursively). Adding a plug-in is adding a file there; nothing else lists it.
- **Third-party**: the entry-point groups ``obliviate.methods``, ``obliviate.metrics``,
  ``obliviate.attacks``, ``obliviate.benchmarks`` and ``obliviate.selectors``; each entry point
  names a module that registers on import.

Importing every plug-in module costs seconds (they import torch, transformers, scipy ...), so the
built-ins are known from ``plugins.json``: what their registrations declared (name, kind, paper,
modalities, summary, the module that registers it) and a hash of every plug-in source file. It is
generated from the real registrations (``python -m obliviate.registry``; a test checks it is up to
date), never written by hand. Metadata queries (`names`, `records`, `check`) read it and import
nothing; `get` imports only the module that registers the plug-in asked for. Where a source file
changed, was added or removed since the table was written, the modules it may affect are imported
and their own registrations used instead, so a stale table is slower, never wrong.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from obliviate.errors import ObliviateError

KINDS = ("method", "metric", "attack", "benchmark", "selector")

# Packages whose modules register the built-in plug-ins (searched recursively).
_PLUGIN_PACKAGES = ("obliviate.methods", "obliviate.metrics", "obliviate.attacks", "obliviate.benchmarks",
                    "obliviate.auditing")
_ENTRY_POINT_GROUP = {
    "method": "obliviate.methods",
    "metric": "obliviate.metrics",
    "attack": "obliviate.attacks",
    "benchmark": "obliviate.benchmarks",
    "selector": "obliviate.selectors",
}
_ROOT = Path(__file__).resolve().parent  # the obliviate package directory
INDEX_PATH = _ROOT / "plugins.json"
INDEX_VERSION = 1
REGENERATE = "python -m obliviate.registry"


@dataclass(frozen=True)
class PluginInfo:
    """One registered plug-in and its provenance (``module``: where its ``register`` call ran)."""

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
    module: str = ""

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
# Module names on the call stack of each registration (the registering module and the helpers it
# called, e.g. methods/base.py's `method`): what the registration's metadata may depend on.
_CHAINS: dict[tuple[str, str], tuple[str, ...]] = {}
_ALL_LOADED = False
_ENTRY_POINTS_LOADED: set[str] = set()
_VIEW: dict[str, dict[str, dict]] | None = None  # kind -> name -> record (+ "module"), built-ins only

T = TypeVar("T")


class UnknownPluginError(ObliviateError, KeyError):
    """Raised for a name that is not registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0])


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown plug-in kind {kind!r}; expected one of {', '.join(KINDS)}")


def _registration_chain() -> tuple[str, ...]:
    """Modules on the stack from the caller of `register` up to the module being imported (the
    innermost module-level frame): the registering module last."""
    chain: list[str] = []
    f = sys._getframe(2)
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        if mod != __name__ and (not chain or chain[-1] != mod):
            chain.append(mod)
        if f.f_code.co_name == "<module>":
            break
        f = f.f_back
    return tuple(chain)


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
    would silently shadow each other (a built-in that is not imported yet counts).
    """
    _check_kind(kind)
    chain = _registration_chain()
    module = chain[-1] if chain else ""

    def deco(obj: T) -> T:
        existing = _REGISTRY[kind].get(name)
        if existing is not None and existing.obj is not obj:
            same_source = getattr(existing.obj, "__qualname__", None) == getattr(obj, "__qualname__", None) and getattr(
                existing.obj, "__module__", None
            ) == getattr(obj, "__module__", None)
            if not same_source:  # a module re-import is fine, a clash is not
                raise ValueError(f"{kind} {name!r} is already registered by {existing.obj!r}")
        builtin = (_VIEW or {}).get(kind, {}).get(name)
        if existing is None and builtin is not None and not module.startswith("obliviate."):
            raise ValueError(f"{kind} {name!r} is already registered by the built-in module {builtin['module']}")
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
            module=module,
        )
        _CHAINS[(kind, name)] = chain
        return obj

    return deco


# ---------------------------------------------------------------------------------------------
# Finding and importing the built-in plug-in modules


def plugin_modules() -> list[str]:
    """Every module of the plug-in packages (found on disk, nothing imported), sorted."""
    out: list[str] = []
    for package in _PLUGIN_PACKAGES:
        top = _ROOT.joinpath(*package.split(".")[1:])
        if not (top / "__init__.py").exists():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            d = Path(dirpath)
            dirnames[:] = sorted(n for n in dirnames if (d / n / "__init__.py").exists())
            base = ".".join(("obliviate",) + d.relative_to(_ROOT).parts)
            out.extend(base if f == "__init__.py" else f"{base}.{f[:-3]}"
                       for f in filenames if f.endswith(".py") and f != "__main__.py")
    return sorted(out)


def _source(module: str) -> Path | None:
    """The source file of an obliviate module, found without importing it (None if absent)."""
    if not module.startswith("obliviate."):
        return None
    parts = module.split(".")[1:]
    for p in (_ROOT.joinpath(*parts).with_suffix(".py"), _ROOT.joinpath(*parts, "__init__.py")):
        if p.exists():
            return p
    return None


def _digest(module: str) -> str:
    p = _source(module)
    return hashlib.sha1(p.read_bytes()).hexdigest() if p is not None else ""


def _import_all_builtins() -> None:
    for module in plugin_modules():
        importlib.import_module(module)


def _entry_point_modules() -> dict[str, list]:
    from importlib.metadata import entry_points

    eps = entry_points()
    return {kind: list(eps.select(group=group)) for kind, group in _ENTRY_POINT_GROUP.items()}


def _load_entry_points() -> None:
    """Import the modules named by the entry points of every group (one scan of the installed
    distributions serves every kind)."""
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED.update(KINDS)
    for group in _entry_point_modules().values():
        for ep in group:
            ep.load()


def _load_all() -> None:
    """Import every built-in plug-in module and every entry point (the full, eager load)."""
    global _ALL_LOADED
    if not _ALL_LOADED:
        _import_all_builtins()
        _ALL_LOADED = True
    _load_entry_points()


# ---------------------------------------------------------------------------------------------
# The static table (plugins.json)


def build_index() -> dict:
    """The table of built-in plug-ins as their registrations declare them. Imports every built-in
    plug-in module (entry points are not read: the table is of obliviate's own plug-ins)."""
    global _ALL_LOADED
    _import_all_builtins()
    _ALL_LOADED = True
    plugins, chained = [], set()
    for kind in KINDS:
        for name in sorted(_REGISTRY[kind]):
            info = _REGISTRY[kind][name]
            chain = [m for m in _CHAINS.get((kind, name), ()) if _source(m) is not None]
            if not info.module.startswith("obliviate."):
                continue
            plugins.append({**info.record(), "module": info.module, "chain": chain})
            chained.update(chain)
    modules = sorted(set(plugin_modules()) | chained)
    return {"version": INDEX_VERSION, "generated_by": REGENERATE,
            "sources": {m: _digest(m) for m in modules}, "plugins": plugins}


def write_index(path: Path = INDEX_PATH) -> Path:
    """Write `build_index()` to ``path`` (temp file + rename)."""
    text = json.dumps(build_index(), indent=1, sort_keys=True) + "\n"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _read_index() -> dict:
    try:
        idx = json.loads(INDEX_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"sources": {}, "plugins": []}
    return idx if idx.get("version") == INDEX_VERSION else {"sources": {}, "plugins": []}


def stale_modules(index: dict | None = None) -> set[str]:
    """Modules whose source differs from the table's: changed, added or removed files."""
    idx = _read_index() if index is None else index
    changed = {m for m, digest in idx["sources"].items() if _digest(m) != digest}  # a removed file digests to ""
    return changed | (set(plugin_modules()) - set(idx["sources"]))


def _view() -> dict[str, dict[str, dict]]:
    """kind -> name -> record of every built-in plug-in: from the table, except where a source
    file changed since it was written; the registering modules those changes may affect (and new
    files) are imported and report their own registrations."""
    global _VIEW
    if _VIEW is not None:
        return _VIEW
    idx = _read_index()
    stale = stale_modules(idx)
    view: dict[str, dict[str, dict]] = {k: {} for k in KINDS}
    current = set(plugin_modules())
    reimport = {m for m in stale if m in current}  # changed or new plug-in package modules
    for p in idx["plugins"]:
        if stale & set(p["chain"]) or p["module"] in stale:
            if _source(p["module"]) is not None:
                reimport.add(p["module"])
            continue
        view[p["kind"]][p["name"]] = p
    for module in sorted(reimport):
        importlib.import_module(module)
    for kind in KINDS:
        for name, info in _REGISTRY[kind].items():
            chain = set(_CHAINS.get((kind, name), ()))
            if info.module in reimport or chain & reimport:
                view[kind][name] = {**info.record(), "module": info.module}
    _VIEW = view
    return view


# ---------------------------------------------------------------------------------------------
# Lookups


def _known(kind: str) -> dict[str, dict]:
    """name -> record of every plug-in of ``kind``: built-ins (from the table), entry points and
    anything registered in this process."""
    _load_entry_points()
    out = dict(_view()[kind])
    out.update({n: {**p.record(), "module": p.module} for n, p in _REGISTRY[kind].items()})
    return out


def _unknown(kind: str, name: str) -> UnknownPluginError:
    known = sorted(_known(kind))
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownPluginError(
        f"unknown {kind} {name!r}.{hint} Registered {kind}s: {', '.join(known) or '(none)'}. "
        f"Run `obliviate ls` to see them with their papers."
    )


def get(kind: str, name: str) -> PluginInfo:
    """Look up a plug-in (importing only the module that registers it); an unknown name raises
    with the closest registered names."""
    _check_kind(kind)
    if name not in _REGISTRY[kind]:
        builtin = _view()[kind].get(name)
        if builtin is not None:
            importlib.import_module(builtin["module"])
        if name not in _REGISTRY[kind]:
            _load_entry_points()
        if name not in _REGISTRY[kind] and builtin is not None:  # the table was wrong: import everything
            _load_all()
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        raise _unknown(kind, name) from None


def check(kind: str, name: str) -> None:
    """Raise `UnknownPluginError` (with close matches) unless ``name`` is a registered ``kind``;
    imports no built-in plug-in module."""
    _check_kind(kind)
    if name not in _known(kind):
        raise _unknown(kind, name)


def names(kind: str, modality: str | None = None) -> list[str]:
    """Sorted names of the registered plug-ins of one kind (optionally one modality)."""
    _check_kind(kind)
    return sorted(n for n, r in _known(kind).items() if modality is None or modality in r["modalities"])


def records(kind: str | None = None) -> list[dict]:
    """`PluginInfo.record()` of every plug-in, of one kind or of every kind, without importing the
    built-in plug-in modules (what `obliviate ls` and the report's citations read)."""
    kinds = KINDS if kind is None else (kind,)
    out: list[dict] = []
    for k in kinds:
        _check_kind(k)
        known = _known(k)
        out.extend({key: v for key, v in known[n].items() if key not in ("module", "chain")} for n in sorted(known))
    return out


def plugins(kind: str | None = None) -> list[PluginInfo]:
    """All plug-in records with their objects, of one kind or of every kind (imports them)."""
    kinds = KINDS if kind is None else (kind,)
    out: list[PluginInfo] = []
    for k in kinds:
        _check_kind(k)
        out.extend(get(k, n) for n in names(k))
    return out


if __name__ == "__main__":  # run as a script this file is `__main__`; the plug-ins register in the package's module
    from obliviate import registry as _registry

    print(f"wrote {_registry.write_index()}")
