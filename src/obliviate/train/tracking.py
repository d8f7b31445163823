"""Run tracking through accelerate's trackers (TensorBoard, Weights & Biases, ...).

`TrainConfig.report_to` names them as accelerate's ``log_with`` does ("tensorboard", "wandb",
"all", a comma list), or "none"; the default "auto" is TensorBoard when it is installed and
``logging_dir`` is set (nothing is written anywhere the user did not name), else nothing. The loop
calls ``init_trackers`` with the run's configs as hyper-parameters (`hparams`), logs ``train/<part>``
(the loss and every logged part, averaged over processes) each optimizer step and ``probe/forget_nll``
/ ``probe/retain_nll`` at each probe, and ends the trackers with the run. Under several processes
accelerate logs from the main process only.

`log_audit` sends an audit's headline to the same trackers (``obliviate audit --report_to ...
--logging_dir DIR``): ``audit/<model>/<metric>`` for every headline metric and
``audit/<model>/verdict_pass`` (1 pass, 0 fail or incomplete) under the same project name, so with
the training run's ``logging_dir`` the audit lands in the same TensorBoard run as the losses.
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


def trackers_for(report_to: str, logging_dir: str = "", option: str = "train option ") -> list[str]:
    """The tracker names to give accelerate (``[]``: tracking off). A named tracker that is not
    installed, or a file-based one without ``logging_dir``, is refused with the fix; ``option`` is how
    the messages name the setting (``"--"`` for the audit's flags)."""
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
            raise ConfigError(f"{option}report_to={report_to!r}: unknown tracker {n!r}; use none, auto, all or "
                              f"a comma list of {', '.join(NAMES)}")
        if not _installed(n):
            what = "'obliviate[tracking]'" if n == "tensorboard" else n
            raise ImportError(f"{option}report_to names {n!r}, which is not installed: pip install {what}, "
                              f"or set {option}report_to=none")
    if "tensorboard" in names and not logging_dir:
        raise ConfigError(f"{option}report_to=tensorboard writes event files: set {option}logging_dir=DIR too")
    return names


PROJECT = "obliviate"  # the run name trackers file everything under (training and audits alike)


def audit_values(report: Any) -> dict[str, float]:
    """The scalars `log_audit` sends: each base model's headline metric values and its verdict."""
    from obliviate.report import content
    from obliviate.report.verdict import judge

    out: dict[str, float] = {}
    metrics = content.headline_metrics(report)
    for row in content.metric_rows(report, metrics):
        for m in metrics:
            v = row.cells[m].value
            if isinstance(v, (int, float)) and v == v:
                out[f"audit/{row.name}/{m}"] = float(v)
    for v in judge(report):
        out[f"audit/{v.model}/verdict_pass"] = 1.0 if v.status == "pass" else 0.0
    return out


def log_audit(report: Any, report_to: str, logging_dir: str = "", step: int | None = None,
              option: str = "--") -> list[str]:
    """Log the audit headline (`audit_values`) to the trackers ``report_to`` names (as `trackers_for`
    reads it); returns the names of the trackers written to. Called on the main process only."""
    names = trackers_for(report_to, logging_dir, option)
    if not names:
        return []
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker, filter_trackers

    values = audit_values(report)
    done = []
    for t in filter_trackers(names, logging_dir or None):
        if isinstance(t, GeneralTracker):
            tracker = t
        else:
            cls = LOGGER_TYPE_TO_CLASS[str(t)]
            tracker = cls(PROJECT, logging_dir) if cls.requires_logging_directory else cls(PROJECT)
        # The caller is the main process; accelerate's own main-process check would start a process
        # group the audit's other processes never join.
        tracker.main_process_only = False
        tracker.start()
        tracker.log(values, step=step)
        tracker.finish()
        done.append(str(tracker.name))
    return done


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
