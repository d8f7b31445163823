"""obliviate: machine unlearning with an audit a sceptic accepts.

Public API (imported lazily so `import obliviate` is cheap)::

    from obliviate import unlearn, audit, load_task, load_model, list_methods, demo
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "unlearn": "obliviate.api",
    "audit": "obliviate.api",
    "load_task": "obliviate.api",
    "list_methods": "obliviate.api",
    "resolve_configs": "obliviate.api",
    "prompt_format": "obliviate.api",
    "load_model": "obliviate.api",
    "demo": "obliviate.demo",
    "ForgetTask": "obliviate.data.task",
    "QAItem": "obliviate.data.task",
    "TrainConfig": "obliviate.train.loop",
    "PromptFormat": "obliviate.data.formatting",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        mod = importlib.import_module(_API[name])
        return getattr(mod, name)
    raise AttributeError(f"module 'obliviate' has no attribute {name!r}")
