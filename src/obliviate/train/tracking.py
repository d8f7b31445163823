"""Run tracking through accelerate's trackers (TensorBoard, Weights & Biases, ...).

`TrainConfig.report_to` names them as accelerate's ``log_with`` does ("tensorboard", "wandb",
"all", a comma list), or "none"; the default "auto" is TensorBoard when it is installed and
``logging_dir`` is set (nothing is written anywhere the user did not name), else nothing. The loop
calls ``init_trackers`` with the run's configs as hyper-parameters (`hparams`), logs ``train/<part>``
(the loss and every logged part, averaged over processes) each optimizer step and ``probe/forget_nll``
/ ``probe/retain_nll`` at each probe, and ends the trackers with the run. Under several processes
accelerate logs from the main process only.
"""

from __future__ import annotations

import importlib.util
from dataclasses import fields, is_dataclass
from typing import Any

NAMES = ("tensorboard", "wandb", "comet_ml", "aim", "mlflow", "clearml", "dvclive", "swanlab", "trackio")
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "comet_ml": ("comet_ml",),
             "aim": ("aim",), "mlflow": ("mlflow",), "clearml": ("clearml",), "dvclive": ("dvclive",),
             "swanlab": ("swanlab",), "trackio": ("trackio",)}


def _installed(name: str) -> bool:
    return any(importlib.util.find_spec(p) is not None for p in _PACKAGES[name])


def trackers_for(report_to: str, logging_dir: str = "") -> list[str]:
    """The tracker names to give accelerate (``[]``: tracking off). A named tracker that is not
    installed, or a file-based one without ``logging_dir``, is refused with the fix."""
    from obliviate.config import ConfigError

    value = (report_to or "none").strip().lower()
    if value == "none":
        return []
    if value == "auto":
        return ["tensorboard"] if logging_dir and _installed("tensorboard") else []
    if value == "all":
        return ["all"]
    names = [n.strip() for n in value.split(",") if n.strip()]
    for n in names:
        if n not in NAMES:
            raise ConfigError(f"train option report_to={report_to!r}: unknown tracker {n!r}; use none, auto, all or "
                              f"a comma list of {', '.join(NAMES)}")
        if not _installed(n):
            what = "'obliviate[tracking]'" if n == "tensorboard" else n
            raise ImportError(f"train option report_to names {n!r}, which is not installed: pip install {what}, "
                              "or set report_to=none")
    if "tensorboard" in names and not logging_dir:
        raise ConfigError("train option report_to=tensorboard writes event files: set logging_dir=DIR too")
    return names


def hparams(method: str, method_cfg: Any, train_cfg: Any) -> dict[str, Any]:
    """The run's configs flattened to scalars (``method.<field>``, ``train.<field>``), as trackers'
    hyper-parameter tables take them; lists and dicts are written as strings."""
    out: dict[str, Any] = {"method": method}
    for prefix, cfg in (("method", method_cfg), ("train", train_cfg)):
        if not is_dataclass(cfg):
            continue
        for f in fields(cfg):
            v = getattr(cfg, f.name)
            out[f"{prefix}.{f.name}"] = v if isinstance(v, (bool, int, float, str)) else str(v)
    return out
