"""``obliviate bench --benchmark muse``: MUSE's six-way evaluation of several methods on a MUSE-format corpus.

Shi et al., "MUSE: Machine Unlearning Six-Way Evaluation for Language Models" (arXiv 2407.06460): (C1) no
verbatim memorisation (VerbMem on the forget set), (C2) no knowledge memorisation (KnowMem forget), (C3) no
privacy leakage (PrivLeak against the retrained model), (C4) utility preserved (KnowMem retain), (C5)
scalability (growing forget sets ``scal/forget_k``) and (C6) sustainability (sequential requests
``sust/forget_k``), the last two from `obliviate.protocols`. The target and the retrained oracle are models
the user gives (MUSE's own: ``muse-bench/MUSE-News_target`` / ``_retrain``); every method starts from the
target with its ``presets/muse`` preset and the given training overrides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from obliviate.benchmarks.public import MUSE_HEADLINE, load_benchmark
from obliviate.config import ConfigError
from obliviate.report.schema import Report

MUSE_MODELS = {"news": ("muse-bench/MUSE-News_target", "muse-bench/MUSE-News_retrain"),
               "books": ("muse-bench/MUSE-Books_target", "muse-bench/MUSE-Books_retrain")}


def bench_muse(methods: Sequence[str], corpus: str = "news", source: str | None = None, *,
               target: str | os.PathLike | None = None, retrain: str | os.PathLike | None = None,
               seeds: Sequence[int] = (0,), attacks: Sequence[str] = (), attack_params: dict | None = None,
               train: dict | None = None, curves: bool = True, out_dir: str | os.PathLike = "obliviate-bench",
               max_new_tokens: int | None = None, dtype: str = "auto") -> Report:
    """Unlearn ``methods`` x ``seeds`` from ``target`` on the MUSE ``corpus`` read from ``source``, audit them
    with ``retrain`` as the oracle (C1-C4), run the scalability and sustainability protocols per method and
    seed (C5, C6; ``report.tables["scalability"]`` / ``["sustainability"]``, empty when ``source`` has no
    ``scal`` / ``sust`` splits, or with ``curves=False``), and write ``report.json`` and ``report.html``."""
    from obliviate import api, protocols
    from obliviate.scoring.cache import ScoringCache

    if not methods:
        raise ConfigError("methods is empty; name at least one method")
    for m in methods:
        api._text_method(m)
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("seeds is empty; give at least one seed")
    task = load_benchmark("muse", corpus, source)
    for m in methods:  # refuse a QA-only method before any model loads
        mcfg, _ = api.resolve_configs(m, "muse", train={k: v for k, v in (train or {}).items()})
        api.check_method_data(m, mcfg, task)
    default_target, default_retrain = MUSE_MODELS[task.metadata["corpus"]]
    tgt, tok = api.load_model(target or default_target, dtype=dtype)
    oracle, _ = api.load_model(retrain or default_retrain, dtype=dtype)
    fmt = api.prompt_format(tok, "auto")
    cache = ScoringCache(tok, fmt, max_new_tokens=max_new_tokens or task.metadata["eval_max_new_tokens"])
    models: dict[str, Any] = {"target": tgt, "oracle": oracle}
    runs: dict[str, dict] = {}
    scal: list[dict] = []
    sust: list[dict] = []
    for seed in seeds:
        over = {"seed": seed, "progress": False, **(train or {})}
        for m in methods:
            name = m if len(seeds) == 1 else f"{m}/seed{seed}"
            res = api.unlearn(tgt, tok, task, method=m, benchmark="muse", fmt=fmt, train=over)
            models[name] = res.model
            runs[name] = {"seconds": res.log.seconds, "steps": res.log.steps, "stopped": res.log.stopped,
                          "seed": seed, "method_config": res.method_config, "train_config": res.train_config}
            if curves:
                kw = dict(cache=cache, fmt=fmt, seed=seed, train=train)
                scal += [{**r, "seed": seed} for r in protocols.muse_scalability(tgt, tok, m, corpus, source, **kw)]
                sust += [{**r, "seed": seed} for r in protocols.muse_sustainability(tgt, tok, m, corpus, source, **kw)]
    report = api.audit(models, task, tok, reference="oracle", metrics=list(MUSE_HEADLINE), cache=cache,
                       roles={"target": "target", "oracle": "oracle"}, runs=runs, attacks=attacks,
                       attack_params=attack_params, attack_models=[n for n in models if n not in ("oracle",)],
                       kind="bench")
    report.tables["scalability"] = scal
    report.tables["sustainability"] = sust
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from obliviate.report.files import write_report

    write_report(report, out / "report.json")  # and report.html, report.md beside it
    return report
