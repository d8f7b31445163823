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
    records = [p.record() for p in registry.plugins(kind)]
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


def unlearn(method: str, model: str, forget: str, retain: Optional[str] = None, out: str = "unlearned",
            benchmark: Optional[str] = None, config: Optional[str] = None, set: Optional[list[str]] = None,
            train: Optional[list[str]] = None, gguf_file: Optional[str] = None, trust_remote_code: bool = False,
            prompt_format: PromptKind = "auto", system_prompt: Optional[str] = None,
            template_var: Optional[list[str]] = None, prompt_template: Optional[str] = None, dtype: DType = "auto",
            gradient_checkpointing: bool = False) -> None:
    """Unlearn FORGET from MODEL with METHOD and save the result (safetensors) to OUT.

    Args:
        method: registered method name (see `obliviate ls`).
        model: hub id or local directory of a causal LM.
        forget: JSONL/JSON/CSV file of question/answer records to forget.
        retain: JSONL/JSON/CSV file of records to keep.
        out: output directory for the unlearned model and run.json.
        benchmark: use this benchmark's preset as the starting config.
        config: YAML file with `method:` and `train:` sections.
        set: method config overrides, KEY=VALUE (e.g. beta=0.2).
        train: TrainConfig overrides, KEY=VALUE (e.g. lr=1e-5 lora=true).
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
    from obliviate.api import unlearn as api_unlearn
    from obliviate.config import load_yaml
    from obliviate.models.loading import load_causal_lm, save_model_atomic
    from obliviate.report.schema import write_json_atomic

    registry.get("method", method)  # fail on a misspelt method before loading any model
    cfg = load_yaml(config) if config else {}
    overrides = {**cfg.get("method", {}), **_kv(set, "--set")}
    train_cfg = {**cfg.get("train", {}), **_kv(train, "--train"), "output_dir": str(Path(out) / "checkpoints")}
    if gradient_checkpointing:
        train_cfg["gradient_checkpointing"] = True
    m, tok = load_causal_lm(model, gguf_file=gguf_file, trust_remote_code=trust_remote_code, dtype=dtype)
    fmt = _prompt_format(tok, prompt_format, system_prompt, template_var, prompt_template)
    res = api_unlearn(m, tok, forget, retain, method=method, benchmark=benchmark, train=train_cfg, fmt=fmt,
                      copy_model=False, **overrides)
    save_model_atomic(res.model, tok, out)
    write_json_atomic({"method": method, "method_config": res.method_config, "train_config": res.train_config,
                       "prompt_format": _fmt_record(fmt), "log": res.log.to_dict()}, Path(out) / "run.json")
    print(f"saved unlearned model to {out} ({res.log.steps} steps, {res.log.stopped})")


def audit(model: list[str], forget: Optional[str] = None, retain: Optional[str] = None,
          holdout: Optional[str] = None, reference: Optional[str] = None, benchmark: Optional[str] = None,
          split: str = "forget10", metrics: Optional[list[str]] = None, out: str = "audit.json",
          ulira_shadows: int = 0, attacks: Optional[list[str]] = None, attack_set: Optional[list[str]] = None,
          prompt_format: PromptKind = "auto", system_prompt: Optional[str] = None,
          template_var: Optional[list[str]] = None, prompt_template: Optional[str] = None, dtype: DType = "auto",
          max_new_tokens: int = 48) -> None:
    """Audit one or more models: every metric, with direction, CI and the gap to the oracle.

    Args:
        model: one or more NAME=PATH (or PATH) model directories to audit.
        forget: forget-set file (not needed with --benchmark).
        retain: retain-set file.
        holdout: held-out file (MIA non-members).
        reference: PATH of the retain-only oracle (named "oracle" in the report).
        benchmark: audit on this benchmark's split instead of files.
        split: benchmark split.
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
        max_new_tokens: greedy generation length for the ROUGE / familiarity / fluency metrics.
    """
    from obliviate.api import HEADLINE
    from obliviate.api import audit as api_audit
    from obliviate.data.io import read_qa_file
    from obliviate.data.task import ForgetTask
    from obliviate.models.loading import load_causal_lm
    from obliviate.report.table import print_table

    attack_params = _attack_kv(attacks or [], attack_set)
    models, tok = {}, None
    for spec in model:
        name, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).name, "", spec)
        models[name], tok = load_causal_lm(path, dtype=dtype)
    if reference:
        models["oracle"], _ = load_causal_lm(reference, dtype=dtype)
    if benchmark:
        from obliviate.api import load_task

        task = load_task(benchmark, split)
    else:
        if not forget:
            raise SystemExit("audit needs --forget (or --benchmark)")
        task = ForgetTask("user", read_qa_file(forget), read_qa_file(retain) if retain else [],
                          read_qa_file(holdout) if holdout else [])
    from obliviate.scoring.cache import ScoringCache

    cache = ScoringCache(tok, _prompt_format(tok, prompt_format, system_prompt, template_var, prompt_template),
                         max_new_tokens=max_new_tokens)
    report = api_audit(models, task, tok, reference="oracle" if reference else None, metrics=metrics, out=out,
                       cache=cache, ulira_shadows=ulira_shadows, attacks=attacks or (), attack_params=attack_params)
    print_table(report, [m for m in HEADLINE if any(m in e.metrics or m in e.skipped for e in report.models.values())])
    print(f"report written to {out}")


def demo(quick: bool = False, split: str = "forget10", out_dir: str = "obliviate-out", seed: int = 0) -> None:
    """Run the built-in benchmark end to end: build models, unlearn with GA/GradDiff/NPO/SimNPO, audit.

    Args:
        quick: use the small recipe (about a minute from a cold cache).
        split: forget01, forget05 or forget10.
        out_dir: where report.json goes.
        seed: benchmark and training seed.
    """
    from obliviate.demo import demo as run_demo

    run_demo(quick=quick, split=split, out_dir=out_dir, seed=seed)


def bench(benchmark: str = "fictional_authors", methods: Optional[list[str]] = None, split: str = "forget10",
          seeds: Optional[list[int]] = None, attacks: Optional[list[str]] = None, out_dir: str = "obliviate-bench",
          quick: bool = False, ulira_shadows: Optional[int] = None, challenge_models: Optional[int] = None,
          arch: str = "mlp", attack_set: Optional[list[str]] = None) -> None:
    """Compare methods x seeds on a benchmark; writes report.json and a self-contained report.html.

    Args:
        benchmark: fictional_authors (language) or digits (image classifiers).
        methods: method names, or "all" (default: GA, GradDiff, NPO, SimNPO; digits: all image methods).
        split: benchmark split (fictional_authors: forget01/05/10; digits: random10, class, subclass).
        seeds: seeds to run (default [0]).
        attacks: attacks to apply to every unlearned model (default: quantize_int4).
        out_dir: output folder.
        quick: use the small recipe (digits: 4 U-LiRA shadows and 4 challenge models instead of 16).
        ulira_shadows: digits only: U-LiRA shadow models per seed (0 turns U-LiRA off).
        challenge_models: digits only: models per arm of the challenge score (0 turns it off).
        arch: digits only: mlp or cnn.
        attack_set: attack options, ATTACK.KEY=VALUE (e.g. quantize_int4.group_size=32).
        prompt_format: auto (the tokenizer's chat template when it has one, else plain), chat, plain
            or template (--prompt_template); every set is scored and generated in it.
        system_prompt: system turn of the chat template.
        template_var: chat-template variables, KEY=VALUE (e.g. date_string="10 Apr 2025").
        prompt_template: a prompt string with a {question} field.
        dtype: auto, float32, bfloat16 or float16: the dtype the models are scored in (log-softmax
            in float32).
        max_new_tokens: greedy generation length for the ROUGE / familiarity / fluency metrics.
    """
    from obliviate.api import HEADLINE
    from obliviate.report.table import print_bench_table

    if benchmark == "digits":
        from obliviate.benchmarks.digits_bench import bench_digits

        from obliviate.benchmarks.digits_bench import print_digits_table

        out = Path(out_dir) / "report.json"
        report = bench_digits(methods=methods or "all", scenario=split if split != "forget10" else "random10",
                              seeds=seeds or [0, 1, 2], arch=arch,
                              ulira_shadows=ulira_shadows if ulira_shadows is not None else (4 if quick else 16),
                              challenge_models=challenge_models if challenge_models is not None else (4 if quick else 16),
                              out=str(out), progress=True)
        print_digits_table(report)
        print(f"report written to {out}")
        return
    from obliviate.api import bench as api_bench

    attacks = attacks if attacks is not None else ["quantize_int4"]
    report = api_bench(benchmark, methods or ("ga", "graddiff", "npo", "simnpo"), split, seeds or [0],
                       attacks, out_dir, quick, attack_params=_attack_kv(attacks, attack_set))
    print_bench_table(report, HEADLINE, title=f"obliviate bench: {report.task['name']}")
    print(f"report written to {out_dir}/report.json and report.html")


def _fmt_record(fmt) -> dict:
    """The prompt format as the run record stores it."""
    return {"kind": fmt.kind, "system_prompt": fmt.system_prompt, "template_vars": dict(fmt.template_vars),
            "template": fmt.template}


def _kv(pairs: Optional[list[str]], flag: str) -> dict:
    import yaml

    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise SystemExit(f"{flag} expects KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def _attack_kv(attacks: list[str], pairs: Optional[list[str]]) -> dict[str, dict]:
    """``--attack_set ATTACK.KEY=VALUE`` pairs as {attack: {key: value}}, checked against the
    attack's keyword arguments, for attacks that are also named in ``--attacks``."""
    import inspect

    out: dict[str, dict] = {}
    for name, value in _kv(pairs, "--attack_set").items():
        attack, _, key = name.partition(".")
        if not key:
            raise SystemExit(f"--attack_set expects ATTACK.KEY=VALUE (e.g. quantize_int4.group_size=32), got {name!r}")
        if attack not in attacks:
            raise SystemExit(f"--attack_set {name}: {attack!r} is not among the attacks to run ({attacks}); "
                             f"add it with --attacks {attack}")
        params = inspect.signature(registry.get("attack", attack).obj).parameters
        kw = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY]
        if key not in kw and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            raise SystemExit(f"--attack_set {name}: {attack} has no option {key!r}; its options are {kw}")
        out.setdefault(attack, {})[key] = value
    return out


COMMANDS = [ls, unlearn, audit, bench, demo]


def _bare_bool_flags(argv: list[str]) -> list[str]:
    """Friendlier flags than jsonargparse's defaults: booleans may be given bare (``--json``,
    ``--quick``), and list options may be repeated (``--set a=1 --set b=2``, ``--model x y``)."""
    import inspect

    bools, lists = set(), set()
    cmd = next((a for a in argv if a in {f.__name__ for f in COMMANDS}), None)
    for f in COMMANDS:
        if f.__name__ != cmd:
            continue
        for n, p in inspect.signature(f).parameters.items():
            ann = str(p.annotation)
            if p.annotation in (bool, "bool"):
                bools.add(f"--{n}")
            elif "list[" in ann:
                lists.add(f"--{n}")
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in bools and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            out += [a, "true"]
        elif a in lists:
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                out += [a + "+", argv[i]]
                i += 1
            continue
        else:
            out.append(a)
        i += 1
    return out


def main(argv: list[str] | None = None) -> None:
    from jsonargparse import auto_cli

    from obliviate.config import ConfigError
    from obliviate.data.io import DataError
    from obliviate.registry import UnknownPluginError

    try:
        auto_cli({f.__name__: f for f in COMMANDS}, args=_bare_bool_flags(sys.argv[1:] if argv is None else argv),
                 as_positional=False)
    except (ConfigError, DataError, UnknownPluginError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
