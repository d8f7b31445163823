"""The Python API. Each CLI subcommand is a thin wrapper over one of these typed functions."""

from __future__ import annotations

import copy
import inspect
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from obliviate import registry
from obliviate.config import ConfigError, build_dataclass, check_fields, load_run_config, to_dict
from obliviate.data.formatting import PromptFormat
from obliviate.data.io import DataError, read_qa_file
from obliviate.data.task import ForgetTask, QAItem
from obliviate.errors import ModelLoadError, OutputError
from obliviate.metrics.base import MissingReferenceError
from obliviate.presets import list_presets, load_preset, preset_path
from obliviate.report.schema import ModelEntry, Report
from obliviate.scoring.cache import ScoringCache
from obliviate.scoring.views import build_view

if TYPE_CHECKING:  # the training loop (accelerate, peft) loads only when a run needs it
    from obliviate.train.loop import RunLog, TrainConfig

# Task metadata that holds data rather than a description: left out of the report's task header.
BULK_METADATA = ("idk_answers", "verbmem", "privleak", "knowmem_icl", "retain2_texts", "multiple_choice")

# The columns of the headline table (demo, bench).
HEADLINE = ("forget_quality", "model_utility", "forget_rouge", "privleak")


@dataclass
class UnlearnResult:
    """An unlearned model with the log and the exact configs that produced it."""

    model: torch.nn.Module
    log: RunLog
    method: str
    method_config: dict
    train_config: dict


def list_methods(modality: str | None = None) -> list[str]:
    """Names of the registered methods (optionally one modality: "text" or "image")."""
    return registry.names("method", modality)


def preset_benchmarks() -> list[str]:
    """The benchmarks that ship presets (``unlearn(benchmark=...)``): presets/<benchmark>/<method>.yaml."""
    return sorted({b for b, _ in list_presets()})


def _text_method(method: str) -> registry.PluginInfo:
    """The registry record of a language-model method; an image-classifier method is refused here,
    since it cannot train a causal LM (it would fail deep inside with a shape error)."""
    info = registry.get("method", method)
    if "text" not in info.modalities:
        raise ConfigError(f"method {method!r} unlearns {'/'.join(info.modalities)} classifiers, not language models; "
                          f"run it with `obliviate bench --benchmark digits --methods {method}` (or "
                          "obliviate.benchmarks.digits_bench.bench_digits). Language-model methods: "
                          f"{', '.join(registry.names('method', 'text'))}")
    return info


def resolve_configs(method: str, benchmark: str | None = None, overrides: dict | None = None,
                    train: dict | None = None, config: str | os.PathLike | None = None) -> tuple[Any, TrainConfig]:
    """Method config and TrainConfig from: dataclass defaults < benchmark preset < ``config`` (a YAML
    file in the preset format: ``method:`` and ``train:`` sections) < ``overrides`` / ``train``.

    Each source is checked on its own (unknown keys, types), so an error names the file it comes
    from; the merged TrainConfig is then range-checked. An unknown benchmark is an error listing the
    benchmarks that ship presets."""
    spec = _text_method(method).obj
    layers: list[tuple[str, dict]] = []
    if benchmark:
        from obliviate.benchmarks.public import is_public

        known = preset_benchmarks()
        if benchmark not in known and not is_public(benchmark):
            from obliviate.benchmarks.public import BENCHMARKS

            raise ConfigError(f"--benchmark: unknown benchmark preset {benchmark!r}; presets ship for: "
                              f"{', '.join(known)}, and the public benchmarks (data from --source) are "
                              f"{', '.join(BENCHMARKS)}")
        preset = load_preset(benchmark, method) if benchmark in known else {}
        if not preset:
            import warnings

            warnings.warn(f"no {benchmark} preset for method {method!r} ({preset_path(benchmark, method).name} does "
                          "not ship): using the method's defaults", stacklevel=2)
        layers.append((f"preset {benchmark}/{method}", preset))
    if config is not None:
        layers.append((str(config), load_run_config(config)))
    layers.append(("", {"method": overrides or {}, "train": train or {}}))
    from obliviate.train.loop import TrainConfig  # the training loop (peft, accelerate) loads only to train

    merged: dict[str, dict] = {"method": {}, "train": {}}
    for source, layer in layers:
        prefix = f"{source}: " if source else ""
        merged["method"].update(check_fields(spec.config_cls, layer.get("method", {}),
                                             where=f"{prefix}method {method!r}"))
        merged["train"].update(check_fields(TrainConfig, layer.get("train", {}), where=f"{prefix}train config"))
    mcfg = spec.make_config(merged["method"])
    tcfg = build_dataclass(TrainConfig, merged["train"], where="train config")
    return mcfg, tcfg


# ``needs`` entries that make retain data required (the "(optional)" forms leave it optional).
RETAIN_NEEDS = ("retain", "retain_set")


def needs_retain(method: str, method_config: Any = None) -> bool:
    """True when ``method`` cannot do what it promises without retain data: its registry ``needs``
    list a retain set, and its config does not switch the retain term off (``alpha=0`` or
    ``retain_loss="none"``, where the method has them)."""
    info = registry.get("method", method)
    if not any(n in RETAIN_NEEDS for n in info.needs):
        return False
    return not (getattr(method_config, "alpha", 1) == 0 or getattr(method_config, "retain_loss", "") == "none")


def qa_only_reason(method: str, method_config: Any = None) -> str:
    """Why ``method`` (under ``method_config``) cannot train on raw forget texts, or "" when it can: it
    pairs each forget question with another answer (the ``forget_alt`` stream: refusals, DPO's
    preference pairs, FLAT's templates), or it declares ``needs`` `FORGET_QA` (ECO's prompt classifier)."""
    from obliviate.methods.base import FORGET_QA

    info = registry.get("method", method)
    spec = info.obj
    if spec.loss is not None and "forget_alt" in spec.streams_for(method_config):
        return "it pairs each forget question with an alternative answer"
    for n in info.needs:
        if n == FORGET_QA or n.startswith(FORGET_QA + " ("):
            return n[len(FORGET_QA):].strip(" ()") or "it reads the forget questions"
    return ""


def raw_text_methods() -> list[str]:
    """The language-model methods that train on raw forget texts (MUSE, WMDP corpora) at their defaults."""
    out = []
    for name in registry.names("method", "text"):
        spec = registry.get("method", name).obj
        if not qa_only_reason(name, spec.make_config()):
            out.append(name)
    return out


def check_method_data(method: str, method_config: Any, task: ForgetTask) -> list[str]:
    """Refuse a task that lacks data the method needs (retain data for GradDiff, RMU, IdK, ...);
    returns notices for optional parts that will be off (e.g. NPO's retain term without retain data).
    A method that reads forget questions is refused on raw forget texts (`qa_only_reason`)."""
    reason = qa_only_reason(method, method_config)
    if reason and task.forget_texts:
        what = ("this task has raw texts only" if not task.forget else
                f"this task's {len(task.forget_texts)} raw forget texts have no question")
        raise ConfigError(f"method {method!r} needs QA items (question/answer pairs) in the forget set ({reason}); "
                          f"{what}. Give the forget data as question/answer records, or pick a method that reads "
                          f"raw text: {', '.join(raw_text_methods())}")
    has_retain = bool(task.retain or task.retain_texts)
    if has_retain:
        return []
    if needs_retain(method, method_config):
        off = (" or switch its retain term off explicitly (alpha=0)" if hasattr(method_config, "alpha") else "")
        raise ConfigError(f"method {method!r} needs retain data (what the model must keep), and none was given; "
                          f"pass --retain FILE (retain=... in Python){off}")
    notices = []
    if getattr(method_config, "alpha", 0) and getattr(method_config, "retain_loss", "none") != "none":
        notices.append(f"no retain data: {method}'s retain term (alpha={method_config.alpha}, "
                       f"retain_loss={method_config.retain_loss!r}) is off")
    return notices


def prepare_unlearn(method: str, forget: ForgetTask | Sequence[QAItem] | str | os.PathLike,
                    retain: Sequence[QAItem] | str | os.PathLike | None = None, *, benchmark: str | None = None,
                    train: dict | None = None, config: str | os.PathLike | None = None,
                    overrides: dict | None = None) -> tuple[ForgetTask, Any, TrainConfig, list[str]]:
    """Everything `unlearn` checks before it needs a model: the method, the configs (preset, config
    file, overrides; types and ranges), the data files, and that the data has what the method needs.
    Returns the task, the method config, the TrainConfig and notices (settings that will be off)."""
    mcfg, tcfg = resolve_configs(method, benchmark, overrides, train, config)
    task = _as_task(forget, retain)
    notices = check_method_data(method, mcfg, task)
    return task, mcfg, tcfg, notices


def unlearn_data(forget: str | os.PathLike | None, retain: str | os.PathLike | None = None, *,
                 benchmark: str | None = None, split: str | None = None, source: str | None = None,
                 ) -> ForgetTask | str | os.PathLike:
    """What ``obliviate unlearn`` trains on: the ``forget`` file (``retain`` beside it), or, with no
    ``forget``, the public ``benchmark``'s ``split`` read from ``source`` (a local copy or a Hub id;
    `obliviate.benchmarks.public.load_benchmark`). Options that would do nothing are refused."""
    from obliviate.benchmarks.public import BENCHMARKS, is_public

    if forget is not None:
        if split is not None or source is not None:
            raise ConfigError("--split/--source choose a public benchmark's data; with --forget FILE they do "
                              "nothing: drop them, or drop --forget to train on the benchmark's split")
        return forget
    if not is_public(benchmark):
        raise ConfigError("unlearn needs --forget FILE (question/answer records), or a public benchmark's data: "
                          f"--benchmark {'|'.join(BENCHMARKS)} --split SPLIT --source DIR|HUB_ID")
    if retain is not None:
        raise ConfigError(f"--retain: the {benchmark} split brings its own retain set; drop --retain, or give "
                          "--forget FILE too to train on your own files with the benchmark's preset")
    return load_task(benchmark, split, source=source)


def check_saveable(method: str) -> None:
    """Refuse, before any training, a method whose result cannot be saved as a model folder."""
    info = registry.get("method", method)
    if not info.extra.get("saveable", True):
        raise OutputError(f"method {method!r} returns an inference-time wrapper around the model (it changes no "
                          "weights), which cannot be saved as a model folder; run it from Python and audit the result "
                          "in the same process: res = obliviate.unlearn(...); obliviate.audit({'m': res.model}, ...)")


def save_unlearned(result: "UnlearnResult", tokenizer: Any, out: str | os.PathLike, *, overwrite: bool = False,
                   extra_files: dict[str, str] | None = None) -> Path:
    """Save an unlearned model (safetensors + tokenizer + ``extra_files``, e.g. run.json) into
    ``out`` atomically; an existing ``out`` is replaced only if an obliviate run wrote it, or
    ``overwrite`` is set (see `obliviate.outputs`)."""
    from transformers import PreTrainedModel

    from obliviate.models.loading import save_model_atomic

    model = result.model
    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency; this keeps the check cheap if it ever is not
        PeftModel = ()  # type: ignore[assignment]
    if not isinstance(model, (PreTrainedModel, PeftModel)):
        raise OutputError(f"method {result.method!r} returned a {type(model).__name__}, which cannot be saved as a "
                          "model folder; audit it in the same Python process")
    return save_model_atomic(model, tokenizer, out, extra_files=extra_files, overwrite=overwrite)


def load_model(name_or_path: str | os.PathLike, **kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """`obliviate.models.loading.load_causal_lm` with one clear error for a path that does not exist
    or a folder/hub id that holds no loadable causal LM (instead of a transformers traceback)."""
    from obliviate.models.loading import load_causal_lm

    s = str(name_or_path)
    p = Path(s).expanduser()
    looks_local = p.is_absolute() or s.startswith((".", "~")) or s.count("/") > 1 or p.suffix == ".gguf" \
        or (os.sep != "/" and os.sep in s)
    if looks_local and not p.exists():
        raise ModelLoadError(f"model {s}: no such file or folder; give a folder saved with save_pretrained "
                             "(safetensors) or a Hugging Face hub id")
    if p.exists() and not p.is_dir() and p.suffix != ".gguf":
        raise ModelLoadError(f"model {s}: is a file; give the model's folder (or a .gguf file)")
    try:
        model, tok = load_causal_lm(s, **kwargs)
    except (ModelLoadError, ImportError):
        raise
    except (OSError, ValueError, KeyError) as e:
        where = "the local folder" if p.exists() else "a local folder or the Hugging Face hub"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if str(p) in first:  # obliviate's own loader already named the folder and the fix
            raise ModelLoadError(first) from None
        raise ModelLoadError(f"model {s}: cannot load a causal LM from {where} ({first})") from None
    check_tokenizer_fits(model, tok, s)
    return model, tok


def check_tokenizer_fits(model: torch.nn.Module, tokenizer: Any, name: str = "the model") -> None:
    """Refuse a tokenizer with more tokens than the model has embedding rows (a tokenizer from
    another checkpoint): its ids would index past the embedding table."""
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    rows = getattr(emb, "num_embeddings", None)
    if rows is not None and tokenizer is not None and len(tokenizer) > rows:
        raise ModelLoadError(f"{name}: the tokenizer has {len(tokenizer)} tokens but the model embeds only {rows}; "
                             "they come from different checkpoints. Save the model with the tokenizer it was trained "
                             "with.")


def prompt_format(tokenizer: Any, fmt: PromptFormat | str | None = None, *, system_prompt: str | None = None,
                  template_vars: dict[str, Any] | None = None, template: str | None = None) -> PromptFormat:
    """The prompt format for ``tokenizer``: a `PromptFormat` as given, or built from a kind
    (``"auto"`` (default) = the chat template when the tokenizer has one, ``"chat"``, ``"plain"``, or
    ``"template"`` with ``template``), the system prompt and chat-template variables."""
    if isinstance(fmt, PromptFormat):
        if system_prompt is not None or template_vars or template:
            raise ValueError("give either a PromptFormat or system_prompt/template_vars/template, not both")
        return fmt
    return PromptFormat.for_tokenizer(tokenizer, fmt or "auto", system_prompt=system_prompt,
                                      template_vars=template_vars, template=template)


def unlearn(model: torch.nn.Module, tokenizer: Any, forget: ForgetTask | Sequence[QAItem] | str,
            retain: Sequence[QAItem] | str | None = None, method: str = "npo", *, benchmark: str | None = None,
            train: dict | None = None, fmt: PromptFormat | str | None = None, copy_model: bool = True,
            config: str | os.PathLike | None = None, **overrides: Any) -> UnlearnResult:
    """Make ``model`` forget ``forget`` while keeping ``retain``.

    ``forget``/``retain``: a ForgetTask, lists of QAItem, or paths to JSONL/JSON/CSV files.
    ``overrides``: method config fields (type-checked; unknown keys are errors).
    ``train``: TrainConfig fields (lr, epochs, batch_size, lora, ...). ``benchmark`` picks a
    shipped preset (``presets/<benchmark>/<method>.yaml``) as the starting point, and ``config`` a
    YAML file in the same format applied over it. ``fmt``: a `PromptFormat` or a kind for
    :func:`prompt_format` (default ``"auto"``: the tokenizer's chat template when it has one, else
    the plain ``Question:/Answer:`` tags).

    Checked before any training (`prepare_unlearn`): the configs' keys, types and ranges, the data,
    and that a method that needs retain data has it. A guard stop (NaN loss, utility collapse) is
    not an exception: ``result.log.stopped`` says why, ``result.log.steps`` which step's weights
    were kept.
    """
    import warnings

    task, mcfg, tcfg, notices = prepare_unlearn(method, forget, retain, benchmark=benchmark, train=train,
                                                config=config, overrides=overrides)
    for n in notices:
        warnings.warn(n, stacklevel=2)
    check_tokenizer_fits(model, tokenizer)
    fmt = prompt_format(tokenizer, fmt)
    from obliviate.train.loop import RunLog, run_unlearning

    info = registry.get("method", method)
    spec = info.obj
    m = copy.deepcopy(model) if copy_model else model
    if spec.run is not None:
        t0 = time.perf_counter()
        out = spec.run(mcfg, m, task, tokenizer=tokenizer, train=tcfg, fmt=fmt)
        log = RunLog(method=method, seconds=time.perf_counter() - t0)
    else:
        # A frozen reference copy costs a model's worth of memory: build it only when the method
        # needs one, or when its retain term is KL to the original model.
        from obliviate.plan import needs_reference_model

        needs_ref = needs_reference_model(info, mcfg)
        out, log = run_unlearning(m, tokenizer, task, spec, mcfg, tcfg, fmt, needs_reference=needs_ref)
    log.notices = notices + log.notices
    return UnlearnResult(out, log, method, to_dict(mcfg), to_dict(tcfg))


def _as_task(forget: Any, retain: Any) -> ForgetTask:
    if isinstance(forget, ForgetTask):
        if retain is not None:
            raise ValueError("forget is a ForgetTask, which carries its own retain set; leave retain=None")
        forget.validate()
        return forget
    f = read_qa_file(forget) if isinstance(forget, (str, os.PathLike)) else list(forget)
    r = read_qa_file(retain) if isinstance(retain, (str, os.PathLike)) else list(retain or [])
    for path, items, what in ((forget, f, "forget"), (retain, r, "retain")):
        if isinstance(path, (str, os.PathLike)) and not items:
            raise DataError(f"{path}: holds no records; the {what} file needs at least one question/answer record")
    task = ForgetTask(name="user", forget=f, retain=r)
    task.validate()
    return task


def audit(models: dict[str, torch.nn.Module], task: ForgetTask, tokenizer: Any, *, reference: str | None = None,
          metrics: Sequence[str] | None = None, fmt: PromptFormat | str | None = None,
          cache: ScoringCache | None = None,
          roles: dict[str, str] | None = None, runs: dict[str, dict] | None = None,
          attacks: Sequence[str] = (), attack_params: dict[str, dict] | None = None,
          attack_models: Sequence[str] | None = None, gradnorm: bool = False, ulira_shadows: int = 0,
          out: str | os.PathLike | None = None, kind: str = "audit", limits: dict[str, int] | None = None,
          reference_logs: str | os.PathLike | None = None) -> Report:
    """Score every model once and compute every metric (or ``metrics``) from the shared cache.

    ``reference`` names the retain-only oracle among ``models``; metrics that need it (forget
    quality, PrivLeak) are listed as skipped, with the reason, when it is absent. ``fmt``: the
    prompt format every set is scored and generated in (as for :func:`unlearn`; default ``"auto"``).
    ``attacks``: registered attack names applied to each model in ``attack_models`` (default:
    every model but the reference); each attacked model is audited as ``<model>@<attack>`` and
    ``report.tables["attacks"]`` lists every metric before and after, plus the share of the
    removed forget knowledge that the attack brings back. ``gradnorm`` adds the per-example
    gradient norms that the gradient-norm MIA reads (one backward pass per forget/holdout item).
    ``ulira_shadows`` = K > 0 adds the U-LiRA per-example attack (``metrics.lm_ulira``): K shadow
    fine-tunes of the benchmark's recipe (cached), then one AUC per model against the reference.
    ``tokenizer`` may be a dict {model name: tokenizer}: each model is then scored, generated and
    attacked with its own tokenizer (one scoring cache per distinct tokenizer, in the same prompt
    format kind, or each tokenizer's own under ``"auto"``).
    ``limits`` {set name: n} scores only the first n items of those sets (default: the task's
    ``metadata["eval_limits"]``, else every item; see `obliviate.scoring.views.eval_sets_of`); the
    report's task header records the limits and the number of items each set was scored on.
    ``reference_logs``: an OpenUnlearning ``TOFU_EVAL.json`` of the retain model, read as the oracle's
    statistics (its forget truth ratios and Min-K% AUC: forget quality and PrivLeak) instead of a
    reference model (`obliviate.benchmarks.reference_logs`).
    """
    from obliviate.scoring.views import eval_sets_of

    if reference is not None and reference not in models:
        raise ValueError(f"reference {reference!r} is not among the audited models ({', '.join(models)})")
    if reference is not None and reference_logs is not None:
        raise ConfigError("give the oracle either as a model (reference=, --reference) or as logs (reference_logs=, "
                          "--reference_logs), not both")
    limits = dict(task.metadata.get("eval_limits") or {}) if limits is None else dict(limits)
    scored = {k: len(v) for k, v in eval_sets_of(task, limits).items() if v}  # checks the limits' set names
    logs_view = None
    if reference_logs is not None:
        from obliviate.benchmarks.reference_logs import read_openunlearning_logs

        logs_view = read_openunlearning_logs(reference_logs, n_forget=len(task.forget) if task.forget else None)
    caches = _caches_per_model(models, tokenizer, fmt, cache)
    first = reference if reference is not None else next(iter(models))
    cache, tokenizer = caches[first], caches[first].tokenizer
    names = list(metrics) if metrics is not None else registry.names("metric", "text")
    for n in names:  # an unknown name fails before any model runs; the metric modules load after scoring
        registry.check("metric", n)
    from obliviate.progress import phase

    with phase(f"score {len(models)} models on {task.name} ({', '.join(f'{k} {v}' for k, v in scored.items())})"):
        views = {name: build_view(m, name, task, caches[name], gradnorm=gradnorm, limits=limits)
                 for name, m in models.items()}
    fns = {n: registry.get("metric", n).obj for n in names}
    ref_view = views.get(reference) if reference else logs_view
    header = {k: v for k, v in task.metadata.items() if k not in BULK_METADATA}
    header.update({"eval_limits": limits, "n_scored": scored, "max_new_tokens": cache.max_new_tokens,
                   "attention_mask": cache.attention_mask})
    if reference_logs is not None:
        header["reference_logs"] = str(reference_logs)
    report = Report(kind=kind, task={"name": task.name, "n_forget": len(task.forget), "n_retain": len(task.retain),
                                     "n_holdout": len(task.holdout), **header},
                    reference=reference if reference_logs is None else "oracle (reference logs)")
    for name, view in views.items():
        entry = ModelEntry(name=name, role=(roles or {}).get(name, "oracle" if name == reference else "unlearned"),
                           run=(runs or {}).get(name))
        for mname, fn in fns.items():
            try:
                entry.metrics[mname] = fn(view, ref_view).to_dict()
            except MissingReferenceError as e:
                entry.skipped[mname] = str(e)
            except KeyError as e:  # the task lacks a set this metric reads
                entry.skipped[mname] = _reason(e)
        report.models[name] = entry
    if ulira_shadows:
        _add_ulira(report, models, task, tokenizer, caches, reference, ulira_shadows)
    if attacks:
        _run_attacks(report, models, views, task, caches, fns, ref_view, reference, attacks, attack_params or {},
                     attack_models, limits)
    used = set(fns) | set(attacks) | ({"ulira"} if ulira_shadows else set())
    report.citations = [r for r in registry.records() if r["name"] in used and r["arxiv"]]
    from obliviate.report.collect import add_audit_extras

    add_audit_extras(report, views, task, lambda name: caches[name].fingerprint(models[name]))
    if out is not None:
        from obliviate.report.files import write_report

        write_report(report, out)
    return report


def model_specs(models: Sequence[str], *, reference: str | None = None, target: str | None = None,
                ) -> dict[str, str]:
    """{name: path or hub id} of ``obliviate audit --model NAME=PATH ...``: a bare PATH is named by its
    last part. ``reference`` is the NAME of one of them or a PATH (added as ``"oracle"``); ``target``
    must name one of them."""
    specs: dict[str, str] = {}
    for spec in models:
        name, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).name, "", spec)
        if not name or not path or name in specs:
            raise ConfigError(f"--model {spec!r}: each model needs a distinct NAME (NAME=PATH, or a PATH whose last "
                              "part names it)")
        specs[name] = path
    if reference and reference not in specs:
        if "oracle" in specs:
            raise ConfigError(f"--reference {reference!r} is a path, which the report names 'oracle', but a --model "
                              "is already named oracle; rename that model or give --reference its NAME")
        specs["oracle"] = reference
    if target is not None and target not in specs:
        raise ConfigError(f"--target {target!r}: not the NAME of a --model ({', '.join(specs)}); name the model "
                          "before unlearning, e.g. --model target=DIR --target target")
    if target is not None and target == (reference if reference in specs else None):
        raise ConfigError(f"--target {target!r} is also the --reference; the target is the model before unlearning, "
                          "the reference the retain-only oracle")
    return specs


def audit_task(benchmark: str | None = None, split: str | None = None, source: str | None = None, *,
               forget: str | os.PathLike | None = None, retain: str | os.PathLike | None = None,
               holdout: str | os.PathLike | None = None, limits: dict[str, int] | None = None) -> ForgetTask:
    """The task ``obliviate audit`` scores: a benchmark split (a public benchmark's from ``source``, see
    `obliviate.benchmarks.public`; or the built-in fictional_authors) or the given files. ``limits``
    (``--limit SET=N``) are recorded in ``task.metadata["eval_limits"]``."""
    from obliviate.benchmarks import public

    if benchmark:
        given = [f"--{k}" for k, v in (("forget", forget), ("retain", retain), ("holdout", holdout)) if v]
        if given:
            raise ConfigError(f"{', '.join(given)}: --benchmark {benchmark} brings its own sets; give either "
                              "--benchmark or files")
        if public.is_public(benchmark):
            return load_task(benchmark, split, source=source, limits=limits)
        if benchmark == "digits":
            raise ConfigError("--benchmark digits is an image-classification benchmark; run it with "
                              "`obliviate bench --benchmark digits`")
        if benchmark != "fictional_authors":
            public.get(benchmark)  # the unknown-name error, listing the benchmarks
        if source is not None:
            raise ConfigError("--source: the built-in fictional_authors benchmark is generated, not read; drop "
                              "--source")
        if split is not None and split not in ("forget01", "forget05", "forget10"):
            raise ConfigError(f"--split {split!r} is not a fictional_authors split; use forget01, forget05 or "
                              "forget10")
        task = load_task(benchmark, split or "forget10")
    else:
        if split is not None or source is not None:
            raise ConfigError("--split/--source choose a benchmark's data; give --benchmark NAME with them")
        if not forget:
            raise ConfigError("audit needs --forget FILE (or --benchmark NAME)")
        task = ForgetTask("user", read_qa_file(forget), read_qa_file(retain) if retain else [],
                          read_qa_file(holdout) if holdout else [])
        task.validate()
    if limits:
        public.check_limits(limits)
        task.metadata["eval_limits"] = {**(task.metadata.get("eval_limits") or {}), **limits}
    if task.metadata.get("eval_limits"):
        from obliviate.scoring.views import eval_sets_of

        try:
            eval_sets_of(task)
        except ValueError as e:
            raise ConfigError(f"--limit: {e}") from None
    return task


@dataclass
class AuditPlan:
    """How ``obliviate audit`` runs on a task: the reference's and target's names, the roles, the
    generation length and the table's columns."""

    task: ForgetTask
    reference: str | None
    roles: dict[str, str]
    max_new_tokens: int
    title: str

    def headline(self, report: Report) -> list[str]:
        """The benchmark's headline metrics (`obliviate.benchmarks.public`; else `HEADLINE`) that any
        model has or skipped."""
        from obliviate.benchmarks.public import BENCHMARKS

        bench = BENCHMARKS.get(self.task.metadata.get("benchmark", ""))
        cols = bench.headline if bench is not None else HEADLINE
        return [m for m in cols if any(m in e.metrics or m in e.skipped for e in report.models.values())]


# Generation length of an audit on user files (the ROUGE metrics read the first tokens of an answer).
DEFAULT_MAX_NEW_TOKENS = 48


def audit_plan(task: ForgetTask, specs: dict[str, str], *, reference: str | None = None, target: str | None = None,
               max_new_tokens: int | None = None) -> AuditPlan:
    """The `AuditPlan` of ``obliviate audit`` (see `model_specs` for ``specs``): the generation length
    is ``max_new_tokens``, else the benchmark's own (``task.metadata["eval_max_new_tokens"]``, e.g. TOFU
    200 as OpenUnlearning), else `DEFAULT_MAX_NEW_TOKENS`."""
    ref = None if not reference else (reference if reference in specs else "oracle")  # a PATH is named "oracle"
    roles = {**({target: "target"} if target else {}), **({ref: "oracle"} if ref else {})}
    n_new = max_new_tokens or task.metadata.get("eval_max_new_tokens") or DEFAULT_MAX_NEW_TOKENS
    return AuditPlan(task, ref, roles, int(n_new), f"obliviate audit: {task.name}")


def _reason(e: Exception) -> str:
    """An exception's message as a skip reason (a KeyError's str() quotes it)."""
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def _caches_per_model(models: dict, tokenizer: Any, fmt: PromptFormat | str | None,
                      cache: ScoringCache | None) -> dict[str, ScoringCache]:
    """One scoring cache per distinct tokenizer, by model name. A given ``cache`` serves the models
    that use its tokenizer; the others get caches with its settings (batch, lengths, format)."""
    toks = tokenizer if isinstance(tokenizer, dict) else {name: tokenizer for name in models}
    missing = [n for n in models if toks.get(n) is None and cache is None]
    if missing:
        raise ValueError(f"no tokenizer for model(s) {', '.join(missing)}; pass tokenizer={{name: tokenizer}} "
                         "with one entry per audited model")
    by_tok: dict[int, ScoringCache] = {id(cache.tokenizer): cache} if cache is not None else {}
    out = {}
    for name in models:
        tok = toks.get(name) or cache.tokenizer
        if id(tok) not in by_tok:
            kind = fmt if fmt is not None else (cache.fmt.kind if cache is not None else None)
            if isinstance(kind, PromptFormat):
                f = kind
            elif cache is not None and kind == cache.fmt.kind:
                f = cache.fmt  # the same system prompt, template and template variables
            else:  # "auto": this tokenizer's own kind, with the given cache's settings when it matches
                f = prompt_format(tok, kind)
                f = cache.fmt if cache is not None and f.kind == cache.fmt.kind else f
            by_tok[id(tok)] = ScoringCache(tok, f, **({"batch_size": cache.batch_size, "max_length": cache.max_length,
                                                       "max_new_tokens": cache.max_new_tokens,
                                                       "attention_mask": cache.attention_mask,
                                                       "gen_batch_size": cache.gen_batch_size,
                                                       "gen_kv_budget": cache.gen_kv_budget} if cache else {}))
        out[name] = by_tok[id(tok)]
    return out


def _add_ulira(report: Report, models: dict, task: ForgetTask, tokenizer: Any, caches: dict[str, ScoringCache],
               reference: str | None, n_shadows: int) -> None:
    from obliviate.auditing.lm_shadows import lm_ulira, train_lm_shadows

    try:
        if reference is None:
            raise MissingReferenceError("U-LiRA compares each model with the retrain oracle; pass reference=")
        from obliviate.progress import phase

        with phase(f"train or load {n_shadows} U-LiRA shadow models"):
            shadows = train_lm_shadows(task, n_shadows)
    except MissingReferenceError as e:
        for entry in report.models.values():
            entry.skipped["ulira"] = str(e)
        return
    for name, model in models.items():
        if caches[name] is not caches[reference]:
            report.models[name].skipped["ulira"] = ("U-LiRA scores a model and the oracle on the same tokens; this "
                                                    "model's tokenizer differs from the reference's")
            continue
        try:
            report.models[name].metrics["ulira"] = lm_ulira(model, models[reference], task, tokenizer,
                                                            shadows=shadows, cache=caches[name]).to_dict()
        except ValueError as e:  # too few IN/OUT shadow scores for every item
            report.models[name].skipped["ulira"] = str(e)


def load_task(benchmark: str = "fictional_authors", split: str | None = None, **kwargs: Any) -> ForgetTask:
    """The ForgetTask of a registered benchmark split (default: the benchmark's default split). The public
    benchmarks (tofu, muse, wmdp, semeval25) take ``source=`` (a local copy or a Hub id) and ``limits=``
    (`obliviate.benchmarks.public.load_benchmark`)."""
    from obliviate.benchmarks.public import is_public, load_benchmark

    if is_public(benchmark):
        return load_benchmark(benchmark, split, **kwargs)
    split = split or "forget10"
    loader = registry.get("benchmark", benchmark).obj
    bench = loader(**kwargs)
    return bench.task(split) if hasattr(bench, "task") else bench


# Knowledge measures for the recovery figure: answer probability and ROUGE-L on the forget set; on
# raw-text benchmarks MUSE's VerbMem / KnowMem on the forget set and WMDP's multiple-choice accuracy.
RECOVERY_METRICS = ("forget_prob", "forget_rouge", "verbmem_forget", "knowmem_forget", "wmdp_accuracy")


def recovered_share(k_target: float, k_unlearned: float, k_attacked: float) -> float:
    """Share of the knowledge removed by unlearning that an attack brings back:
    (K_attacked - K_unlearned) / (K_target - K_unlearned); NaN when nothing was removed."""
    removed = k_target - k_unlearned
    return float("nan") if removed <= 1e-12 else (k_attacked - k_unlearned) / removed


def _run_attacks(report: Report, models: dict, views: dict, task: ForgetTask, caches: dict[str, ScoringCache],
                 fns: dict, ref_view: Any, reference: str | None, attacks: Sequence[str], params: dict,
                 targets: Sequence[str] | None, limits: dict[str, int] | None = None) -> None:
    from obliviate.progress import phase

    rows = []
    target_name = next((n for n, e in report.models.items() if e.role == "target"), None)
    for aname in attacks:
        afn = registry.get("attack", aname).obj
        for mname in targets if targets is not None else [n for n in models if n != reference]:
            cache = caches[mname]  # the model's own tokenizer and prompt format
            kw = dict(params.get(aname, {}))
            if "fmt" in inspect.signature(afn).parameters:
                kw.setdefault("fmt", cache.fmt)  # attacks encode through the audit's prompt format
            label = f"{mname}@{aname}"
            with phase(f"attack {label} and re-score"):
                res = afn(models[mname], task, cache.tokenizer, **kw)
                view = build_view(res.model, label, res.task, cache, limits=limits)
            entry = ModelEntry(name=label, role="attacked", run={"attack": aname, "of": mname, **res.details})
            for metric, fn in fns.items():
                try:
                    entry.metrics[metric] = fn(view, ref_view).to_dict()
                except (MissingReferenceError, KeyError) as e:
                    entry.skipped[metric] = _reason(e)
            report.models[label] = entry
            before = report.models[mname].metrics
            for metric, r in entry.metrics.items():
                if metric in before:
                    row = {"model": mname, "attack": aname, "metric": metric, "before": before[metric]["value"],
                           "after": r["value"]}
                    if metric in RECOVERY_METRICS and target_name and metric in report.models[target_name].metrics:
                        kt = report.models[target_name].metrics[metric]["value"]
                        row["recovered_share"] = recovered_share(kt, row["before"], row["after"])
                    rows.append(row)
    report.tables["attacks"] = rows


def bench(benchmark: str = "fictional_authors", methods: Sequence[str] | str = ("ga", "graddiff", "npo", "simnpo"),
          split: str = "forget10", seeds: Sequence[int] = (0,), attacks: Sequence[str] = ("quantize_int4",),
          out_dir: str | os.PathLike = "obliviate-bench", quick: bool = False,
          attack_params: dict[str, dict] | None = None) -> Report:
    """Run ``methods`` x ``seeds`` on a benchmark split, audit everything against the oracle, and
    write ``report.json`` and ``report.html`` into ``out_dir``. ``methods="all"`` runs every
    registered text method that has a preset for the benchmark. ``attack_params`` gives an
    attack's options by name, as in :func:`audit`."""
    from obliviate.benchmarks.fictional_authors import load_fictional_authors
    from obliviate.demo import benchmark_recipe
    from obliviate.presets import list_presets

    if benchmark != "fictional_authors":
        raise ConfigError(f"unknown benchmark {benchmark!r} for bench; choose fictional_authors (language models, "
                          "this function) or digits (image classifiers: `obliviate bench --benchmark digits`, "
                          "obliviate.benchmarks.digits_bench.bench_digits)")
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("seeds is empty; give at least one seed (e.g. --seeds 0 or --seeds '[0,1,2]')")
    if isinstance(methods, str):
        methods = [methods]
    if not methods:
        raise ConfigError("methods is empty; name at least one method, or 'all'")
    if list(methods) == ["all"]:
        methods = [m for b, m in list_presets() if b == benchmark and m in registry.names("method", "text")]
    for m in methods:  # every name, before hours of work on the first ones
        _text_method(m)
    out_dir = Path(out_dir)
    entries: dict[str, Any] = {}
    reports = []
    from obliviate.progress import phase

    for seed in seeds:
        with phase(f"build or load the {benchmark} benchmark (seed {seed})"):
            b = load_fictional_authors(benchmark_recipe(quick, seed))
            tok, task = b.tokenizer(), b.task(split)
            models = {"target": b.load("target"), "oracle": b.load("oracle", split)}
        runs = {}
        for m in methods:
            with phase(f"unlearn {task.name} with {m} (seed {seed})"):
                models[m], runs[m] = _bench_run(m, models["target"], tok, task, benchmark, b.fmt, seed,
                                                out_dir / "models" / f"seed{seed}" / m, recipe=b.recipe.key())
        with phase(f"audit {len(models)} models, attacks {', '.join(attacks) or 'none'} (seed {seed})"):
            rep = audit(models, task, tok, reference="oracle", fmt=b.fmt,
                        roles={"target": "target", "oracle": "oracle"}, runs=runs, attacks=attacks,
                        attack_params=attack_params, kind="bench")
        reports.append((seed, rep))
        _bench_cards(rep, runs, task, out_dir / "models" / f"seed{seed}", out_dir / "report.json",
                     f"the {benchmark} target (recipe {b.recipe.key()})")
        for name, e in rep.models.items():
            entries[f"{name}" if len(seeds) == 1 else f"{name}/seed{seed}"] = e
    report = reports[0][1] if len(reports) == 1 else _merge_seeds(reports)
    out_dir.mkdir(parents=True, exist_ok=True)
    from obliviate.report.files import write_report

    write_report(report, out_dir / "report.json")  # and report.html, report.md beside it
    return report


def _bench_cards(rep: Report, runs: dict[str, dict], task: ForgetTask, models_dir: Path, report_path: Path,
                 base_model: str) -> None:
    """A model card with the audit headline in every model folder the bench saved."""
    from obliviate.report.collect import task_fingerprint
    from obliviate.report.model_card import audit_section, bench_card, with_audit
    from obliviate.report.schema import write_text_atomic

    data = task_fingerprint(task)
    for m, run in runs.items():
        folder = models_dir / m
        if (folder / "run.json").exists() and m in rep.models:  # saved (inference-time wrappers are not)
            card = bench_card(run, m, task.name, base_model, data)
            write_text_atomic(with_audit(card, audit_section(rep, m, str(report_path))), folder / "README.md")


def _bench_run(method: str, target: torch.nn.Module, tok: Any, task: ForgetTask, benchmark: str,
               fmt: PromptFormat, seed: int, save_dir: Path, recipe: str = "") -> tuple[torch.nn.Module, dict]:
    """Unlearn one method for ``bench``, or reload it when a previous (killed) bench already
    finished it: each finished model is saved atomically with its run record, so a rerun of the
    same command resumes at the first method it has not done. A saved model made with another
    benchmark recipe, split or config is refused, not reused."""
    import json

    from transformers import PreTrainedModel

    from obliviate.errors import ResumeError
    from obliviate.models.loading import save_model_atomic
    from obliviate.report.schema import dumps_strict

    train = {"seed": seed, "progress": False}
    record = save_dir / "run.json"
    if record.exists():
        from transformers import AutoModelForCausalLM

        run = json.loads(record.read_text())
        mcfg, tcfg = resolve_configs(method, benchmark, train=train)
        now = {"recipe": recipe, "split": task.name, "method_config": to_dict(mcfg), "train_config": to_dict(tcfg)}
        then = {k: run.get(k) for k in now}
        if json.loads(dumps_strict(now)) != then:
            differ = ", ".join(k for k in now if json.loads(dumps_strict(now[k])) != then[k])
            raise ResumeError(f"{save_dir}: this saved {method} model was made with another {differ} than this bench "
                              f"run, so it is not reused; delete {save_dir} (or use another --out_dir) to redo it")
        model = AutoModelForCausalLM.from_pretrained(str(save_dir), use_safetensors=True)
        return model.eval(), run
    res = unlearn(target, tok, task, method=method, benchmark=benchmark, fmt=fmt, train=train)
    run = {"seconds": res.log.seconds, "steps": res.log.steps, "total_steps": res.log.total_steps,
           "stopped": res.log.stopped, "recipe": recipe,
           "split": task.name, "method": method, "method_config": res.method_config,
           "train_config": res.train_config, "best_step": res.log.best_step, "history": res.log.history,
           "probes": res.log.probes}
    if isinstance(res.model, PreTrainedModel):
        # Inference-time wrappers (ECO, WHP logits) are cheap to rebuild and are not saved here.
        save_model_atomic(res.model, None, save_dir, extra_files={"run.json": dumps_strict(run)})
    return res.model, run


def _merge_seeds(reports: list[tuple[int, Report]]) -> Report:
    """One report whose models are named ``<model>/seed<k>``, plus a mean/std table per model."""
    import numpy as np

    first = reports[0][1]
    merged = Report(kind="bench", task=first.task, reference=first.reference, citations=first.citations)
    for seed, rep in reports:
        for name, e in rep.models.items():
            merged.models[f"{name}/seed{seed}"] = e
        for k, v in rep.tables.items():
            merged.tables.setdefault(k, []).extend([{**row, "seed": seed} for row in v] if isinstance(v, list) else [v])
    summary = {}
    for name in first.models:
        per_metric: dict[str, list[float]] = {}
        for seed, rep in reports:
            for m, r in rep.models[name].metrics.items():
                if r["value"] is not None:
                    per_metric.setdefault(m, []).append(r["value"])
        summary[name] = {m: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n_seeds": len(v)}
                         for m, v in per_metric.items()}
    merged.tables["seed_summary"] = summary
    return merged
