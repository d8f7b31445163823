"""Command-line interface: one subcommand per typed API function (jsonargparse)."""

from __future__ import annotations

import json as _json
import sys
from pathlib import Path
from typing import Literal, Optional

from obliviate import registry


def ls(json: bool = False, kind: Optional[str] = None) -> None:
    """List every registered method, metric, attack, benchmark and selector with its paper.

    Args:
        json: print JSON records (kind, name, paper, arxiv, ...) instead of a table.
        kind: only this kind (method, metric, attack, benchmark, selector).
    """
    records = registry.records(kind)
    if json:
        print(_json.dumps(records, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table()
    for col in ("kind", "name", "modalities", "paper", "arxiv"):
        t.add_column(col)
    for r in records:
        t.add_row(r["kind"], r["name"], ",".join(r["modalities"]), r["paper"], r["arxiv"])
    Console().print(t)


PromptKind = Literal["auto", "chat", "plain", "template"]
DType = Literal["auto", "float32", "bfloat16", "float16"]


def _prompt_format(tok, prompt_format: str, system_prompt: Optional[str], template_var: Optional[list[str]],
                   prompt_template: Optional[str]):
    from obliviate.api import prompt_format as make

    return make(tok, "template" if prompt_template and prompt_format == "auto" else prompt_format,
                system_prompt=system_prompt, template_vars=_kv(template_var, "--template_var"),
                template=prompt_template)


def unlearn(method: str, model: str, forget: Optional[str] = None, retain: Optional[str] = None,
            out: str = "unlearned", benchmark: Optional[str] = None, split: Optional[str] = None,
            source: Optional[str] = None, config: Optional[str] = None, set: Optional[list[str]] = None,
            train: Optional[list[str]] = None, overwrite: bool = False, print_config: bool = False,
            gguf_file: Optional[str] = None, trust_remote_code: bool = False,
            prompt_format: PromptKind = "auto", system_prompt: Optional[str] = None,
            template_var: Optional[list[str]] = None, prompt_template: Optional[str] = None, dtype: DType = "auto",
            gradient_checkpointing: bool = False) -> None:
    r"""Unlearn FORGET from MODEL with METHOD and save the result (safetensors) to OUT.

    Args:
        method: registered method name (see `obliviate ls`).
        model: hub id or local directory of a causal LM.
        forget: JSONL/JSON/CSV file of question/answer records to forget (not needed with --benchmark
            tofu|muse|wmdp|semeval25, whose split brings its forget and retain data).
        retain: JSONL/JSON/CSV file of records to keep.
        out: output folder for the unlearned model, run.json, a model card (README.md) and the HTML
            run card (run.html: training curves, configs, provenance). It is
            written in a temporary sibling and renamed into place when complete; an existing folder
            is replaced only if an obliviate run wrote it (or with --overwrite). Checkpoints (--train
            checkpoint_every=K) go to the hidden sibling .OUT.checkpoints, and the same command
            resumes from them after a kill.
        benchmark: use this benchmark's preset as the starting config (fictional_authors, tofu, muse); a
            public benchmark (tofu, muse, wmdp, semeval25) without --forget also gives the data: its
            --split read from --source.
        split: the public benchmark's split: tofu forget01/05/10 (default forget10), muse news/books
            (default news), wmdp bio/cyber/chem or a comma list (default bio,cyber), semeval25
            train/validation (default train).
        source: a local copy of the benchmark's Hub dataset (a directory) or its Hub id (default: the
            benchmark's own, e.g. locuslab/TOFU; offline, only a local copy works).
        config: YAML file in the preset format: a `method:` section (method options) and a `train:`
            section (training options); --set and --train override it.
        set: method config overrides, KEY=VALUE (e.g. beta=0.2).
        train: TrainConfig overrides, KEY=VALUE (e.g. lr=1e-5 lora=true).
        overwrite: replace OUT even if it is a folder obliviate did not write (everything in it is lost).
        print_config: print the resolved config (defaults < --benchmark preset < --config < --set/--train)
            as YAML in the --config format, and exit without loading the model.
        gguf_file: GGUF file inside MODEL to load.
        trust_remote_code: allow the model repository's own code (off by default).
        prompt_format: auto (the tokenizer's chat template when it has one, else plain), chat, plain
            (Question:/Answer: tags) or template (--prompt_template).
        system_prompt: system turn of the chat template (text before the prompt in plain formats).
        template_var: chat-template variables, KEY=VALUE (e.g. date_string="10 Apr 2025").
        prompt_template: a prompt string with a {question} field, e.g. "### Q: {question}\n### A:".
        dtype: auto (the checkpoint's dtype; float32 for GGUF), float32, bfloat16 or float16; the
            model trains and is saved in it.
        gradient_checkpointing: recompute activations in the backward pass (less memory, more time).
    """
    import shutil

    from obliviate import api
    from obliviate.config import to_dict
    from obliviate.outputs import check_output_dir, checkpoint_dir_for
    from obliviate.report.schema import dumps_strict

    overrides, train_over = _kv(set, "--set"), _kv(train, "--train")
    _kv(template_var, "--template_var")  # checked now; used once the tokenizer is loaded
    if gradient_checkpointing:
        train_over["gradient_checkpointing"] = True
    # Everything that can be checked without the model is checked before it loads (it may take minutes).
    mcfg, tcfg = api.resolve_configs(method, benchmark, overrides, train_over, config)
    if print_config:
        import yaml

        print(f"# obliviate unlearn --method {method}: resolved config (defaults < --benchmark preset < --config < "
              "--set/--train); reuse it with --config FILE")
        print(yaml.safe_dump({"method": to_dict(mcfg), "train": to_dict(tcfg)}, sort_keys=False), end="")
        return
    api.check_saveable(method)
    check_output_dir(out, overwrite=overwrite, option="--out")
    ckpt_dir = None
    if not tcfg.output_dir:  # resumable checkpoints live beside OUT, which is only renamed into place at the end
        ckpt_dir = checkpoint_dir_for(out)
        train_over["output_dir"] = str(ckpt_dir)
    data = api.unlearn_data(forget, retain, benchmark=benchmark, split=split, source=source)
    task, _, _, _ = api.prepare_unlearn(method, data, None if forget is None else retain, benchmark=benchmark,
                                        train=train_over, config=config, overrides=overrides)
    m, tok = api.load_model(model, gguf_file=gguf_file, trust_remote_code=trust_remote_code, dtype=dtype)
    fmt = _prompt_format(tok, prompt_format, system_prompt, template_var, prompt_template)
    res = api.unlearn(m, tok, task, method=method, benchmark=benchmark, train=train_over, fmt=fmt, copy_model=False,
                      config=config, **overrides)
    log = res.log
    record = {"method": method, "task": task.name, "status": "stopped by a guard" if log.guard_stopped else "completed",
              "kept_step": log.steps, "method_config": res.method_config, "train_config": res.train_config,
              "prompt_format": fmt.to_dict(), "log": log.to_dict()}
    from obliviate.train.distributed import is_main_process, wait_for_everyone

    if is_main_process():  # under several processes (accelerate launch) the main process writes the output
        from obliviate.report.collect import task_fingerprint
        from obliviate.report.html import render_html
        from obliviate.report.model_card import model_card, run_report

        hint = (f"obliviate audit --model unlearned={out} --model original={model}"
                + (f" --benchmark {benchmark}" if benchmark else f" --forget {forget}")
                + (f" --retain {retain}" if retain and not benchmark else "") + " --target original")
        plain = _json.loads(dumps_strict(record))
        card = model_card(plain, base_model=str(model), data=task_fingerprint(task), audit_hint=hint)
        page = render_html(run_report(plain, base_model=str(model), data=task_fingerprint(task), audit_hint=hint))
        api.save_unlearned(res, tok, out, overwrite=overwrite,
                           extra_files={"run.json": dumps_strict(record), "README.md": card, "run.html": page})
        if ckpt_dir is not None:  # the run is complete and saved: its checkpoints have nothing left to resume
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    wait_for_everyone()  # no process reports success before the output is in place
    if not is_main_process():
        return
    if log.guard_stopped:
        kept = ("the original model's: nothing was unlearned" if log.steps == 0
                else f"those after step {log.steps} of {log.total_steps}")
        raise GuardStopped(f"{log.stopped}. The weights kept are {kept}; saved them to {out} (run.json: status "
                           "'stopped by a guard'). Lower --train lr, or change the guard settings (collapse_factor, "
                           "guard_nan), and run again.")
    note = f", {log.stopped}" if log.stopped != "completed" else ""
    best = f", best step {log.best_step} by {tcfg.best_rule}" if log.best_step is not None else ""
    print(f"saved unlearned model to {out} ({log.steps} steps{best}{note})")
    print(f"run card: {Path(out) / 'run.html'} (model card: {Path(out) / 'README.md'})")


def audit(model: list[str], forget: Optional[str] = None, retain: Optional[str] = None,
          holdout: Optional[str] = None, reference: Optional[str] = None, benchmark: Optional[str] = None,
          split: Optional[str] = None, source: Optional[str] = None, target: Optional[str] = None,
          reference_logs: Optional[str] = None, limit: Optional[list[str]] = None,
          metrics: Optional[list[str]] = None, out: str = "audit.json",
          ulira_shadows: int = 0, attacks: Optional[list[str]] = None, attack_set: Optional[list[str]] = None,
          prompt_format: PromptKind = "auto", system_prompt: Optional[str] = None,
          template_var: Optional[list[str]] = None, prompt_template: Optional[str] = None, dtype: DType = "auto",
          max_new_tokens: Optional[int] = None, attention_mask: Literal["real", "non_pad"] = "real",
          report_to: str = "none", logging_dir: str = "") -> None:
    """Audit one or more models: every metric, with direction, CI and the gap to the oracle.

    Args:
        model: one or more NAME=PATH (or PATH) models to audit: local directories or hub ids.
        forget: forget-set file (not needed with --benchmark).
        retain: retain-set file.
        holdout: held-out file (MIA non-members).
        reference: the retain-only oracle: the NAME of one of the --model models (e.g. --model
            retain=DIR --reference retain), or a PATH (then named "oracle" in the report).
        benchmark: audit on this benchmark's split instead of files: tofu, muse, wmdp, semeval25 (read
            from --source) or the built-in fictional_authors.
        split: benchmark split (tofu forget01/05/10, default forget10; muse news/books, default news;
            wmdp bio/cyber/chem or a comma list, default bio,cyber; semeval25 train/validation, default
            train; fictional_authors forget01/05/10).
        source: a local copy of the public benchmark's Hub dataset (a directory) or its Hub id (default:
            the benchmark's own, e.g. locuslab/TOFU; offline, only a local copy works).
        target: the NAME of the --model that is the model before unlearning: the attacks table then gives
            the share of the removed forget knowledge each attack brings back.
        reference_logs: an OpenUnlearning TOFU_EVAL.json of the retain model, read as the oracle's
            statistics (forget truth ratios, Min-K AUC) for forget quality and PrivLeak, instead of
            --reference.
        limit: evaluate only the first N items of a set, SET=N (e.g. retain=200); default: every item.
        metrics: only these metrics (default: all).
        out: report JSON path.
        ulira_shadows: K > 0 adds the U-LiRA attack with K shadow fine-tunes (needs --benchmark and
            --reference; each shadow costs one fine-tune of the benchmark recipe, cached).
        attacks: attacks to apply to every audited model except the oracle (e.g. quantize_int4
            relearn); the report's attacks table gives each metric before and after.
        attack_set: attack options, ATTACK.KEY=VALUE (e.g. quantize_int4.group_size=32).
        prompt_format: auto (the tokenizer's chat template when it has one, else plain), chat, plain
            or template (--prompt_template); every set is scored and generated in it.
        system_prompt: system turn of the chat template.
        template_var: chat-template variables, KEY=VALUE (e.g. date_string="10 Apr 2025").
        prompt_template: a prompt string with a {question} field.
        dtype: auto, float32, bfloat16 or float16: the dtype the models are scored in (log-softmax
            in float32).
        max_new_tokens: greedy generation length for the ROUGE / familiarity / fluency metrics (default:
            the benchmark's own, tofu 200 as OpenUnlearning, muse/semeval25 128, wmdp 8; files 48).
        attention_mask: real (mask only padding) or non_pad: OpenUnlearning's mask, input_ids !=
            pad_token_id, which also hides real tokens sharing the pad id (Llama-3's <|eot_id|> inside
            the prompt); only to reproduce that tool's published numbers.
        report_to: trackers that receive the audit headline (audit/<model>/<metric> and the verdict):
            none, tensorboard, wandb, ... as the training option report_to; give the unlearning
            run's logging_dir to put the audit in the same run as its losses.
        logging_dir: the trackers' folder (needed by tensorboard).
    """
    from obliviate import api
    from obliviate.train import tracking
    from obliviate.api import audit as api_audit
    from obliviate.config import ConfigError
    from obliviate.outputs import check_output_file
    from obliviate.report.table import print_table

    # Checked before any model loads: options, the report path, the data.
    attack_params = _attack_kv(attacks or [], attack_set)
    _kv(template_var, "--template_var")
    limits = _kv(limit, "--limit")
    for name in list(metrics or []) + list(attacks or []):
        registry.check("metric" if name in (metrics or []) else "attack", name)
    if ulira_shadows < 0 or (max_new_tokens is not None and max_new_tokens < 1):
        raise ConfigError("--ulira_shadows must be 0 or more and --max_new_tokens at least 1")
    if reference and reference_logs:
        raise ConfigError("--reference and --reference_logs both give the oracle; give one of them")
    check_output_file(out, option="--out")
    tracking.trackers_for(report_to, logging_dir, "--")  # an unknown or missing tracker fails now, not after the audit
    specs = api.model_specs(model, reference=reference, target=target)
    task = api.audit_task(benchmark, split, source, forget=forget, retain=retain, holdout=holdout, limits=limits)
    plan = api.audit_plan(task, specs, reference=reference, target=target, max_new_tokens=max_new_tokens)
    from obliviate.train.distributed import is_main_process

    if not is_main_process():  # under several processes the main process audits alone: the 1-process report
        return
    models, tokenizers = {}, {}
    for name, path in specs.items():
        models[name], tokenizers[name] = api.load_model(path, dtype=dtype)
    # Each model is scored with its own tokenizer; models whose tokenizers are the same (vocabulary
    # and chat template) share one, and so one scoring cache.
    distinct: list = []
    for name, t in tokenizers.items():
        same = next((d for d in distinct if d.get_vocab() == t.get_vocab()
                     and getattr(d, "chat_template", None) == getattr(t, "chat_template", None)), None)
        if same is None:
            distinct.append(t)
        tokenizers[name] = same or t
    from obliviate.scoring.cache import ScoringCache

    # The first model's cache sets the prompt format and lengths; the audit gives every other
    # tokenizer a cache with the same settings.
    tok = tokenizers[plan.reference or next(iter(models))]
    cache = ScoringCache(tok, _prompt_format(tok, prompt_format, system_prompt, template_var, prompt_template),
                         max_new_tokens=plan.max_new_tokens, attention_mask=attention_mask)
    report = api_audit(models, task, tokenizers, reference=plan.reference, metrics=metrics, out=out, cache=cache,
                       fmt="template" if prompt_template else prompt_format, ulira_shadows=ulira_shadows,
                       attacks=attacks or (), attack_params=attack_params, roles=plan.roles,
                       reference_logs=reference_logs)
    print_table(report, plan.headline(report), title=plan.title)
    _print_report_paths(Path(out))
    from obliviate.report.model_card import update_cards

    written, failed = update_cards(report, {n: p for n, p in specs.items() if Path(str(p)).is_dir()}, str(out))
    for card in written:
        print(f"model card updated with the audit headline: {card}")
    for line in failed:
        print(f"warning: model card not updated ({line}); the audit report is at {out}", file=sys.stderr)
    logged = tracking.log_audit(report, report_to, logging_dir)
    if logged:
        print(f"audit headline logged to {', '.join(logged)}" + (f" in {logging_dir}" if logging_dir else ""))


def demo(quick: bool = False, split: str = "forget10", out_dir: str = "obliviate-out", seed: int = 0) -> None:
    """Run the built-in benchmark end to end: build models, unlearn with GA/GradDiff/NPO/SimNPO, audit.

    Args:
        quick: use the small recipe (about a minute from a cold cache).
        split: forget01, forget05 or forget10.
        out_dir: where report.json goes.
        seed: benchmark and training seed.
    """
    from obliviate.demo import demo as run_demo
    from obliviate.outputs import check_output_file

    check_output_file(Path(out_dir) / "report.json", option="--out_dir")
    run_demo(quick=quick, split=split, out_dir=out_dir, seed=seed)


def bench(benchmark: str = "fictional_authors", methods: Optional[list[str]] = None, split: Optional[str] = None,
          seeds: Optional[list[int]] = None, attacks: Optional[list[str]] = None, out_dir: str = "obliviate-bench",
          quick: bool = False, ulira_shadows: Optional[int] = None, challenge_models: Optional[int] = None,
          arch: str = "mlp", attack_set: Optional[list[str]] = None, source: Optional[str] = None,
          model: Optional[str] = None, reference: Optional[str] = None, train: Optional[list[str]] = None,
          curves: bool = True, max_new_tokens: Optional[int] = None) -> None:
    """Compare methods x seeds on a benchmark; writes report.json and a self-contained report.html.

    Args:
        benchmark: fictional_authors (language), muse (MUSE's six-way evaluation of a MUSE-format
            corpus from --source), digits (image classifiers), domains (domain unlearning in a
            CLIP-style model: ADU and its baselines; splits forget1, forget3) or multimodal (Forget-MI
            on synthetic patients' image+report records; splits forget03/06/10).
        methods: method names, or "all" (default: GA, GradDiff, NPO, SimNPO; muse: GA, NPO; digits: all
            image methods).
        split: benchmark split (fictional_authors: forget01/05/10, default forget10; muse: news/books,
            default news; digits: random10, class, subclass; domains: forget1 (default), forget3;
            multimodal: forget03, forget06, forget10 (default)).
        source: muse only: a local copy of MUSE-News/MUSE-Books (a directory) or its Hub id.
        model: muse only: the target model to unlearn (default muse-bench/MUSE-<News|Books>_target).
        reference: muse only: the retrained oracle (default muse-bench/MUSE-<News|Books>_retrain).
        train: muse only: TrainConfig overrides for every run, KEY=VALUE (e.g. max_steps=5).
        curves: muse only: run the scalability (scal/forget_k) and sustainability (sust/forget_k)
            protocols too (--no_curves skips them).
        max_new_tokens: muse only: generation length (default 128, MUSE's VerbMem length).
        seeds: seeds to run (default [0]).
        attacks: attacks to apply to every unlearned model (default: quantize_int4).
        out_dir: output folder.
        quick: use the small recipe (digits: 4 U-LiRA shadows and 4 challenge models instead of 16).
        ulira_shadows: digits only: U-LiRA shadow models per seed (0 turns U-LiRA off).
        challenge_models: digits only: models per arm of the challenge score (0 turns it off).
        arch: digits only: mlp or cnn.
        attack_set: attack options, ATTACK.KEY=VALUE (e.g. quantize_int4.group_size=32).
    """
    from obliviate.api import HEADLINE
    from obliviate.config import ConfigError
    from obliviate.outputs import check_output_file
    from obliviate.report.table import print_bench_table

    if benchmark == "multimodal":  # Forget-MI on synthetic patients' image+report records
        from obliviate.benchmarks.multimodal_bench import VARIANTS, bench_multimodal, print_multimodal_table

        other = {"--attacks": attacks, "--attack_set": attack_set, "--ulira_shadows": ulira_shadows,
                 "--challenge_models": challenge_models, "--source": source, "--model": model, "--train": train}
        if [k for k, v in other.items() if v]:
            raise ConfigError(f"{', '.join(k for k, v in other.items() if v)}: not used by --benchmark multimodal")
        rows = {r: VARIANTS[r] if r in VARIANTS else (r, {}) for r in (methods or list(VARIANTS))}
        check_output_file(Path(out_dir) / "report.json", option="--out_dir")
        report = bench_multimodal(rows, split or "forget10", seeds if seeds is not None else [0, 1, 2],
                                  out=str(Path(out_dir) / "report.json"), progress=True)
        print_multimodal_table(report)
        _print_report_paths(Path(out_dir) / "report.json")
        return
    if benchmark == "domains":  # ADU-style domain unlearning on the built-in dual encoder
        from obliviate.benchmarks.domains_bench import DEFAULT_METHODS, bench_domains, print_domains_table

        other = {"--attacks": attacks, "--attack_set": attack_set, "--ulira_shadows": ulira_shadows,
                 "--challenge_models": challenge_models, "--source": source, "--model": model, "--train": train}
        if [k for k, v in other.items() if v]:
            raise ConfigError(f"{', '.join(k for k, v in other.items() if v)}: not used by --benchmark domains")
        check_output_file(Path(out_dir) / "report.json", option="--out_dir")
        report = bench_domains(methods or list(DEFAULT_METHODS), split or "forget1",
                               seeds if seeds is not None else [0, 1, 2], out=str(Path(out_dir) / "report.json"),
                               progress=True)
        print_domains_table(report)
        _print_report_paths(Path(out_dir) / "report.json")
        return
    if benchmark not in ("fictional_authors", "digits", "muse"):
        raise ConfigError(f"--benchmark {benchmark!r}: bench runs fictional_authors (language models), muse (a "
                          "MUSE-format corpus, --source) or digits (image classifiers)")
    muse_only = {"--source": source, "--model": model, "--reference": reference, "--train": train,
                 "--no_curves": None if curves else False, "--max_new_tokens": max_new_tokens}
    given_muse = [k for k, v in muse_only.items() if v is not None]
    if benchmark != "muse" and given_muse:
        raise ConfigError(f"{', '.join(given_muse)}: muse-only option(s); they do nothing on {benchmark}")
    if benchmark == "muse":
        from obliviate.benchmarks.muse_bench import bench_muse
        from obliviate.benchmarks.public import MUSE_HEADLINE, resolve_split
        from obliviate.report.table import print_rows

        corpus = resolve_split("muse", split)
        attacks = attacks if attacks is not None else []
        for a in attacks:
            registry.check("attack", a)
        check_output_file(Path(out_dir) / "report.json", option="--out_dir")
        report = bench_muse(methods if methods is not None else ["ga", "npo"], corpus, source, target=model,
                            retrain=reference, seeds=seeds if seeds is not None else [0], attacks=attacks,
                            attack_params=_attack_kv(attacks, attack_set), train=_kv(train, "--train"),
                            curves=curves, out_dir=out_dir, max_new_tokens=max_new_tokens)
        print_bench_table(report, MUSE_HEADLINE, title=f"obliviate bench: {report.task['name']} (C1-C4)",
                          metric="knowmem_forget")
        print_rows(report.tables["scalability"], "C5 scalability: scal/forget_k, each from the target")
        print_rows(report.tables["sustainability"], "C6 sustainability: sust/forget_k, one after another")
        _print_report_paths(Path(out_dir) / "report.json")
        return
    split = split or "forget10"
    digits_only = {"--ulira_shadows": ulira_shadows, "--challenge_models": challenge_models,
                   "--arch": None if arch == "mlp" else arch}
    given = [k for k, v in digits_only.items() if v is not None]
    if benchmark != "digits" and given:
        raise ConfigError(f"{', '.join(given)}: digits-only option(s); they do nothing on {benchmark}")
    if benchmark == "digits" and (attacks is not None or attack_set):
        raise ConfigError("--attacks/--attack_set: the attacks apply to language models; the digits bench has none")
    if any(v is not None and v < 0 for v in (ulira_shadows, challenge_models)):
        raise ConfigError("--ulira_shadows and --challenge_models must be 0 (off) or more")
    check_output_file(Path(out_dir) / "report.json", option="--out_dir")
    if benchmark == "digits":
        from obliviate.benchmarks.digits_bench import bench_digits

        from obliviate.benchmarks.digits_bench import print_digits_table

        from obliviate.progress import phase

        out = Path(out_dir) / "report.json"
        with phase(f"digits bench ({split if split != 'forget10' else 'random10'}, {arch})"):
            report = bench_digits(
                methods=methods if methods is not None else "all",
                scenario=split if split != "forget10" else "random10",
                seeds=seeds if seeds is not None else [0, 1, 2], arch=arch,
                ulira_shadows=ulira_shadows if ulira_shadows is not None else (4 if quick else 16),
                challenge_models=challenge_models if challenge_models is not None else (4 if quick else 16),
                out=str(out), progress=True)
        print_digits_table(report)
        from obliviate.report.files import write_report

        paths = write_report(report, out)  # the JSON again, with its verdict, and the HTML / Markdown beside it
        print(f"report written to {out}")
        print(f"HTML report: {paths['html']} (Markdown: {paths['markdown']})")
        return
    from obliviate.api import bench as api_bench

    attacks = attacks if attacks is not None else ["quantize_int4"]
    for a in attacks:
        registry.check("attack", a)
    report = api_bench(benchmark, methods if methods is not None else ("ga", "graddiff", "npo", "simnpo"), split,
                       seeds if seeds is not None else [0], attacks, out_dir, quick,
                       attack_params=_attack_kv(attacks, attack_set))
    print_bench_table(report, HEADLINE, title=f"obliviate bench: {report.task['name']}")
    _print_report_paths(Path(out_dir) / "report.json")


def report(inputs: list[str], html: Optional[str] = None, markdown: Optional[str] = None,
           rule: Optional[list[str]] = None) -> None:
    """Turn report JSONs (or the run folders holding them) into a self-contained HTML page and Markdown.

    Args:
        inputs: one or more report JSON files (audit, bench, demo; language or vision) or the folders
            they were written to (report.json / audit.json inside). Several are merged into one
            comparison.
        html: the HTML file to write (default: next to the JSON, same name, .html; several inputs:
            report.html here).
        markdown: the Markdown file to write (default: next to the JSON, .md; several inputs: report.md).
        rule: verdict thresholds, KEY=VALUE (e.g. forget_quality_min=0.1 privleak_max=5; see
            obliviate.report.verdict.VerdictRules).
    """
    from obliviate.report.files import render_reports

    out = render_reports(inputs, html=html, markdown=markdown, rules=_kv(rule, "--rule"))
    print(f"HTML report: {out['html']}")
    print(f"Markdown report: {out['markdown']}")


def plan(model: str, method: str, lora: bool = False, lora_r: Optional[int] = None,
         lora_target: Optional[list[str]] = None, num_processes: int = 1, fsdp: bool = False, zero2: bool = False,
         zero3: bool = False, dtype: Literal["bfloat16", "float32", "float16"] = "bfloat16",
         batch_size: Optional[int] = None, max_length: Optional[int] = None, set: Optional[list[str]] = None,
         gguf_file: Optional[str] = None, json: bool = False) -> None:
    """Estimate the memory per device of unlearning MODEL with METHOD, from its config alone (no weights).

    Args:
        model: a config.json file, a model folder (its config.json, or a GGUF file with --gguf_file), or a hub id.
        method: registered gradient method (see `obliviate ls`); whether it builds a reference model comes from it.
        lora: train LoRA adapters (peft's default layers for the architecture, or --lora_target).
        lora_r: LoRA rank (default: the training loop's, 8).
        lora_target: layers to adapt (e.g. q_proj v_proj); default: peft's for the architecture.
        num_processes: processes (GPUs) the run is spread over.
        fsdp: FSDP full shard over the processes (weights, gradients, optimizer state, reference model).
        zero2: DeepSpeed ZeRO-2 (gradients and optimizer state sharded).
        zero3: DeepSpeed ZeRO-3 (weights, gradients, optimizer state and reference model sharded).
        dtype: the dtype the model is loaded and trained in (unlearn --dtype).
        batch_size: micro-batch per process (default: the training loop's, 8).
        max_length: tokens per sequence (default: the training loop's, 256).
        set: method config overrides, KEY=VALUE (e.g. retain_loss=kl: GradDiff with a reference model).
        gguf_file: GGUF file inside MODEL to read the config from.
        json: print the plan as JSON (bytes) instead of a table.
    """
    from obliviate.config import ConfigError
    from obliviate.plan import plan_memory

    chosen = [name for name, on in (("fsdp", fsdp), ("zero2", zero2), ("zero3", zero3)) if on]
    if len(chosen) > 1:
        raise ConfigError(f"--{' and --'.join(chosen)}: choose one sharding")
    result = plan_memory(model, method, lora=lora, lora_r=lora_r, lora_target=lora_target or (),
                         num_processes=num_processes, sharding=chosen[0] if chosen else "none", dtype=dtype,
                         batch_size=batch_size, max_length=max_length, method_overrides=_kv(set, "--set"),
                         gguf_file=gguf_file)
    print(_json.dumps(result.to_dict(), indent=2) if json else result.format())


def _print_report_paths(json_path: Path) -> None:
    """The closing lines of a command that wrote a report: the JSON, the HTML page and the Markdown."""
    print(f"report written to {json_path}")
    print(f"HTML report: {json_path.with_suffix('.html')} (Markdown: {json_path.with_suffix('.md')})")


def _kv(pairs: Optional[list[str]], flag: str) -> dict:
    """KEY=VALUE pairs as a dict, each VALUE read as YAML (``lr=1e-5``, ``lora=true``, ``layers=[1,2]``)."""
    import yaml

    from obliviate.config import ConfigError

    out = {}
    for p in pairs or []:
        k, eq, v = p.partition("=")
        if not eq or not k.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE (e.g. {flag} lr=1e-5), got {p!r}")
        if k.strip() in out:
            raise ConfigError(f"{flag} {k.strip()} is given twice ({out[k.strip()]!r} and {v!r}); give it once")
        try:
            out[k.strip()] = yaml.safe_load(v) if v.strip() else v
        except yaml.YAMLError:
            out[k.strip()] = v  # not YAML: the text itself (the config type check decides)
    return out


def _attack_kv(attacks: list[str], pairs: Optional[list[str]]) -> dict[str, dict]:
    """``--attack_set ATTACK.KEY=VALUE`` pairs as {attack: {key: value}}, checked against the
    attack's keyword arguments, for attacks that are also named in ``--attacks``."""
    import inspect

    from obliviate.config import ConfigError

    out: dict[str, dict] = {}
    for name, value in _kv(pairs, "--attack_set").items():
        attack, _, key = name.partition(".")
        if not key:
            raise ConfigError(f"--attack_set expects ATTACK.KEY=VALUE (e.g. quantize_int4.group_size=32), got {name!r}")
        if attack not in attacks:
            raise ConfigError(f"--attack_set {name}: {attack!r} is not among the attacks to run ({attacks}); "
                              f"add it with --attacks {attack}")
        params = inspect.signature(registry.get("attack", attack).obj).parameters
        kw = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY]
        if key not in kw and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            raise ConfigError(f"--attack_set {name}: {attack} has no option {key!r}; its options are {kw}")
        out.setdefault(attack, {})[key] = value
    return out


COMMANDS = [ls, unlearn, audit, bench, demo, report, plan]
# List arguments given as positionals (``obliviate report A.json B/``), not as --NAME options.
POSITIONAL = {"report": "inputs"}

# Exit codes: 0 done, 1 internal error (a bug: please report it), 2 bad input or a refused output,
# 3 a guard stopped the run early (the weights it kept were saved; run.json says why).
EXIT_INTERNAL, EXIT_INPUT, EXIT_GUARD = 1, 2, 3


class GuardStopped(Exception):
    """Raised by `unlearn` after saving when a guard ended the run early (exit code 3)."""


def _annotation_kind(tp: object) -> tuple[str, type] | None:
    """("bool", bool) for a boolean option, ("list", item type) for a list option, else None."""
    import types
    import typing

    if tp is bool:
        return "bool", bool
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        tp = args[0]
    if typing.get_origin(tp) is list:
        inner = (typing.get_args(tp) or (str,))[0]
        return "list", inner if inner in (str, int, float) else str
    return None


class _ListOption:
    """Factory for the argparse action of a list option. A list may be given as repeated flags
    (``--set a=1 --set b=2``), space-separated values (``--attacks quantize_int4 relearn``) or a
    YAML list (``--seeds "[0,1,2]"``, ``--seeds '[]'`` for an empty one), in any mix."""

    @staticmethod
    def make(item_type: type):
        import argparse

        import yaml

        class ListAction(argparse.Action):
            def __init__(self, option_strings, dest, **kwargs):
                kwargs["nargs"] = "+"
                super().__init__(option_strings, dest, **kwargs)
                self.given = False  # the first use replaces the default, later ones extend it (one parse per parser)

            def __call__(self, parser, namespace, values, option_string=None):
                items: list = []
                for v in values:
                    if v.lstrip().startswith("["):
                        try:
                            parsed = yaml.safe_load(v)
                        except yaml.YAMLError:
                            parsed = None
                        if not isinstance(parsed, list):
                            parser.error(f"{option_string}: {v!r} is not a list (write it as [a, b] or give the "
                                         "values one by one)")
                        items.extend(parsed)
                    else:
                        items.append(v)
                out = []
                for x in items:
                    try:
                        out.append(item_type(x) if item_type is not str else str(x))
                    except (TypeError, ValueError):
                        parser.error(f"{option_string}: expected {item_type.__name__} values, got {x!r}")
                previous = getattr(namespace, self.dest, None) if self.given else None
                setattr(namespace, self.dest, list(previous or []) + out)
                self.given = True

        return ListAction


def _param_docs(fn) -> dict[str, str]:
    from docstring_parser import parse

    return {p.arg_name: " ".join((p.description or "").split()) for p in parse(fn.__doc__ or "").params}


def build_parser():
    """The command-line parser: jsonargparse over each command's typed signature and docstring.

    Booleans take a bare flag or a value (``--quick``, ``--quick true``, ``--no_quick``) and lists
    repeated flags, several values or a YAML list (see `_ListOption`). ``unlearn --config FILE``
    reads a run config in the preset format (the command's own option, which jsonargparse's
    ``--config`` would otherwise take over and drop); the other commands take jsonargparse's
    ``--config`` (a YAML file of their options) and ``--print_config``. ``--debug`` shows the full
    traceback of an error."""
    import inspect
    import typing

    from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

    parser = ArgumentParser(prog="obliviate", description="Machine unlearning with an audit a sceptic accepts.",
                            exit_on_error=True)
    parser.add_argument("--debug", action=ActionYesNo, default=False, help="show the full traceback of an error")
    subcommands = parser.add_subcommands(required=True, dest="subcommand")
    for fn in COMMANDS:
        docs = _param_docs(fn)
        description = (fn.__doc__ or "").strip().split("\n")[0]
        params = inspect.signature(fn).parameters
        # A command with its own config/print_config options (unlearn) turns jsonargparse's off.
        sub = ArgumentParser(description=description,
                             print_config=None if "print_config" in params else "--print_config")
        hints = typing.get_type_hints(fn)
        special = {n: _annotation_kind(hints.get(n)) for n in params}
        special = {n: k for n, k in special.items() if k is not None}
        if "config" not in params:
            sub.add_argument("--config", action=ActionConfigFile, help="a YAML file of this command's options")
        for name, (kind, item_type) in [(n, special.get(n, ("typed", None))) for n in params]:
            p = params[name]
            required = p.default is inspect.Parameter.empty
            default = None if required else p.default
            if kind == "typed":
                # The annotation is the type (jsonargparse checks Optional/Literal values); jsonargparse's
                # add_function_arguments is not used: its source resolver looks the function up by import
                # path, and `obliviate.unlearn` / `obliviate.audit` would import the whole API for --help.
                if name not in hints:
                    raise TypeError(f"obliviate {fn.__name__}: option {name!r} has no type annotation")
                sub.add_argument(f"--{name}", type=hints[name], required=required, default=default,
                                 help=docs.get(name, ""))
            elif kind == "bool":
                sub.add_argument(f"--{name}", action=ActionYesNo, nargs="?", default=default,
                                 help=f"{docs.get(name, '')} (--{name} / --{name} true / --no_{name}; default: "
                                      f"{str(default).lower()})")
            elif POSITIONAL.get(fn.__name__) == name:
                sub.add_argument(name, nargs="+", metavar=name.upper(), help=docs.get(name, ""))
            else:
                # --NAME+ is jsonargparse's append spelling, kept for commands written against it
                sub.add_argument(f"--{name}", f"--{name}+", action=_ListOption.make(item_type), required=required,
                                 default=default,
                                 metavar=name.upper(),
                                 help=f"{docs.get(name, '')} (one or more {item_type.__name__} values, repeatable, "
                                      f"or a YAML list{'; required' if required else ''})")
        sub.add_argument("--debug", action=ActionYesNo, default=False, help="show the full traceback of an error")
        subcommands.add_subcommand(fn.__name__, sub, help=description)
    return parser


def parse(argv: list[str]) -> tuple[object, dict]:
    """(command function, its keyword arguments + ``debug``) for ``argv`` (without the program name)."""
    parser = build_parser()
    cfg = parser.parse_args(argv)
    name = cfg.subcommand
    kwargs = cfg[name].as_dict() if hasattr(cfg[name], "as_dict") else dict(cfg[name])
    if name != "unlearn":
        kwargs.pop("config", None)  # jsonargparse's own --config, already applied
    debug = bool(kwargs.pop("debug", False) or cfg.get("debug"))
    fn = {f.__name__: f for f in COMMANDS}[name]
    _check_list_values(fn, kwargs, parser)
    return fn, {**kwargs, "debug": debug}


def _check_list_values(fn, kwargs: dict, parser) -> None:
    """List options that came from a --config file bypass the command-line action: check them here."""
    import typing

    hints = typing.get_type_hints(fn)
    for name, value in kwargs.items():
        kind = _annotation_kind(hints.get(name))
        if kind is None or kind[0] != "list" or value is None:
            continue
        if not isinstance(value, list):
            parser.error(f"--{name}: expected a list of {kind[1].__name__} values, got {value!r}")
        try:
            kwargs[name] = [kind[1](v) for v in value]
        except (TypeError, ValueError):
            parser.error(f"--{name}: expected {kind[1].__name__} values, got {value!r}")


def _expected_errors() -> tuple[type[BaseException], ...]:
    from obliviate.errors import ObliviateError

    # ValueError/OSError/ImportError: the library's own checks that predate ObliviateError (empty
    # forget set, lora_target typos, a missing optional extra, a permission error) speak to the user too.
    return ObliviateError, ValueError, OSError, ImportError


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``obliviate`` command: one message and exit code 2 for bad input, 3 when a
    guard stopped a run early, 1 (with a pointer to ``--debug``) for an internal error."""
    import warnings

    args = sys.argv[1:] if argv is None else list(argv)
    fn, kwargs = parse(args)
    debug = kwargs.pop("debug")
    show = warnings.showwarning

    def notice(message, category, filename, lineno, file=None, line=None):
        if debug:
            return show(message, category, filename, lineno, file, line)
        print(f"notice: {message}", file=sys.stderr)

    warnings.showwarning = notice
    try:
        fn(**kwargs)
    except GuardStopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        raise SystemExit(EXIT_GUARD) from None
    except KeyboardInterrupt:
        print("interrupted: nothing was written to the output; with checkpoints (--train checkpoint_every=K) the "
              "same command resumes from the last one", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except _expected_errors() as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT) from None
    except Exception as e:  # an internal error: say so, and how to see more
        if debug:
            raise
        print(f"internal error: {type(e).__name__}: {e}\n(this is a bug in obliviate or a library it uses; rerun "
              "with --debug for the traceback and report it)", file=sys.stderr)
        raise SystemExit(EXIT_INTERNAL) from None
    finally:
        warnings.showwarning = show


if __name__ == "__main__":
    main()
