"""Loaders that turn the upstream unlearning benchmarks into `ForgetTask`s, keeping their exact schemas.

Each loader takes ``source``: a Hugging Face Hub dataset id (the default; read with
`datasets.load_dataset`) or a local directory / file holding the same files as the Hub repository
(e.g. made with ``huggingface-cli download <id> --repo-type dataset --local-dir <dir>``). Nothing is
downloaded when ``source`` is a local path. With no local copy and no network (or ``HF_DATASETS_OFFLINE=1``)
a loader raises `DatasetUnavailableError`, which says how to get the data.

Upstream schemas (Hub dataset cards, checked against the benchmark code):
- TOFU ``locuslab/TOFU`` (arXiv 2401.06121): configs ``forget01/05/10``, ``retain90/95/99``, ``full``,
  ``holdout01/05/10`` (question, answer); ``forget{XX}_perturbed``, ``retain_perturbed`` (question, answer,
  paraphrased_answer, perturbed_answer: list of 5, paraphrased_question); ``real_authors_perturbed``,
  ``world_facts_perturbed`` (question, answer, perturbed_answer, option1-4). One split, ``train``. Files:
  ``<config>.json`` (JSON lines) at the repo root.
- MUSE ``muse-bench/MUSE-News`` / ``MUSE-Books`` (arXiv 2407.06460): configs ``raw`` (forget, retain1, retain2,
  holdout; text), ``verbmem`` (forget; prompt, gt), ``knowmem`` (forget_qa, retain_qa, forget_qa_icl,
  retain_qa_icl; question, answer), ``privleak`` (forget, retain, holdout; text), ``scal``/``sust``
  (forget_1..4; text), ``train``. Files: ``<config>/<split>-00000-of-00001.parquet``.
- WMDP ``cais/wmdp`` (arXiv 2403.03218): configs ``wmdp-bio``, ``wmdp-chem``, ``wmdp-cyber``, split ``test``
  (question, choices: list[str], answer: int index). Corpora ``cais/wmdp-corpora``: ``bio-retain-corpus``,
  ``cyber-forget-corpus``, ``cyber-retain-corpus`` (text); the bio forget corpus is gated
  (``cais/wmdp-bio-forget-corpus``). OpenUnlearning keeps them as ``wmdp-corpora/<name>.jsonl``.
- SemEval-2025 Task 4 ``llmunlearningsemeval2025organization/semeval25-unlearning-dataset-public``
  (arXiv 2504.02883): splits ``forget_train``, ``forget_validation``, ``retain_train``, ``retain_validation``
  (id, input, output, task, split). Files: ``data/<split>-00000-of-00001.parquet``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from obliviate.data.io import DataError
from obliviate.data.task import ForgetTask, QAItem

TOFU_HUB = "locuslab/TOFU"
MUSE_HUB = {"news": "muse-bench/MUSE-News", "books": "muse-bench/MUSE-Books"}
WMDP_HUB = "cais/wmdp"
WMDP_CORPORA_HUB = "cais/wmdp-corpora"
SEMEVAL25_HUB = "llmunlearningsemeval2025organization/semeval25-unlearning-dataset-public"
TOFU_AUTHOR_QAS = 20  # TOFU: 200 authors × 20 QA pairs, in author order; forgetXX = the last XX % of authors


class DatasetUnavailableError(DataError):
    """The dataset is neither at the given local path nor reachable on the Hub; the message says how to get it."""


# ---- reading ------------------------------------------------------------------------------------
def _is_local(source: str | Path) -> bool:
    p = Path(source).expanduser()
    if p.exists():
        return True
    s = str(source)
    # A Hub id is "owner/name"; anything else that looks like a path and does not exist is a user error.
    if s.startswith(("/", ".", "~")) or s.count("/") != 1 or isinstance(source, Path):
        raise DatasetUnavailableError(f"{s}: no such file or directory. Pass an existing local copy of the dataset "
                                      "or a Hub id such as 'locuslab/TOFU'.")
    return False


def _read_file(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix in (".json", ".jsonl"):
        text = path.read_text(encoding="utf-8").strip()
        if not text:
            return []
        if text[0] == "[":  # a JSON list
            data = json.loads(text)
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON list of records")
            return data
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        return rows
    raise DataError(f"{path}: unsupported file type {path.suffix!r} (expected .parquet, .json or .jsonl)")


def _local_records(root: Path, patterns: Sequence[str]) -> list[dict] | None:
    """Rows of the first pattern that matches under ``root`` (several shards are concatenated)."""
    if root.is_file():
        return _read_file(root)
    for pat in patterns:
        files = sorted(root.glob(pat))
        if files:
            return [row for f in files for row in _read_file(f)]
    return None


def _hub_records(hub_id: str, config: str | None, split: str) -> list[dict]:
    from datasets import load_dataset

    try:
        ds = load_dataset(hub_id, config, split=split)
    except Exception as e:  # datasets raises ConnectionError, FileNotFoundError, ValueError, hub errors...
        raise DatasetUnavailableError(_how_to_get(hub_id, f"{config or 'default'}/{split}", e)) from e
    return [dict(r) for r in ds]


def _how_to_get(hub_id: str, what: str, err: BaseException | None = None) -> str:
    why = f" ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})" if err else ""
    return (f"could not load {what} of the Hub dataset {hub_id!r}{why}. Without network access, download it once "
            f"elsewhere with `huggingface-cli download {hub_id} --repo-type dataset --local-dir <dir>` (gated "
            f"datasets need `huggingface-cli login` and accepted terms) and pass source=<dir>.")


def _records(source: str | Path, hub_id: str, config: str | None, split: str, patterns: Sequence[str],
             optional: bool = False) -> list[dict] | None:
    """Rows of one (config, split), from the local copy at ``source`` or from the Hub."""
    if _is_local(source):
        rows = _local_records(Path(source).expanduser(), patterns)
        if rows is None and not optional:
            raise DatasetUnavailableError(
                f"{source}: no file for {config or ''}/{split} of {hub_id} (looked for {', '.join(patterns)}). "
                f"The directory must mirror the Hub repository; get it with `huggingface-cli download {hub_id} "
                f"--repo-type dataset --local-dir {source}`.")
        return rows
    try:
        return _hub_records(str(source), config, split)
    except DatasetUnavailableError:
        if optional:
            return None
        raise


def _need(row: dict, field: str, where: str) -> Any:
    if field not in row:
        raise DataError(f"{where}: field {field!r} is missing (fields present: {sorted(row)}); is this the upstream "
                        "file, unmodified?")
    return row[field]


# ---- TOFU ---------------------------------------------------------------------------------------
def _tofu_patterns(config: str) -> list[str]:
    return [f"{config}.json", f"{config}.jsonl", f"{config}/*.parquet", f"{config}/*.json", f"{config}-*.parquet",
            f"data/{config}-*.parquet"]


def _tofu_item(row: dict, where: str, id_: str, group: str) -> QAItem:
    pert = row.get("perturbed_answer") or ()
    pq = row.get("paraphrased_question")
    return QAItem(question=_need(row, "question", where), answer=_need(row, "answer", where), id=id_, group=group,
                  paraphrased_answer=row.get("paraphrased_answer"),
                  perturbed_answers=(pert,) if isinstance(pert, str) else tuple(pert),
                  question_paraphrases=(pq,) if pq else ())


def load_tofu(split: str = "forget10", source: str | Path = TOFU_HUB, *, eval_sets: bool = True) -> ForgetTask:
    """TOFU ``forget01`` / ``forget05`` / ``forget10`` as a ForgetTask.

    forget: ``{split}_perturbed`` (answers + paraphrase + 5 perturbed answers; ``{split}`` if the perturbed
    file is absent). retain: ``retain{100-XX}``, with the ``retain_perturbed`` items (enriched with their
    paraphrased / perturbed answers) first. eval set ``retain``: every ``retain_perturbed`` item, which the
    audit scores as the retain set, as OpenUnlearning does (``TOFU_QA_retain_eval``). holdout:
    ``holdout{XX}`` when present (OpenUnlearning added it; MIA non-members). eval sets: ``real_authors`` and
    ``world_facts`` from their ``_perturbed`` configs. ``group`` = the author (20 QA pairs each).
    """
    pct = {"forget01": 1, "forget05": 5, "forget10": 10}.get(split)
    if pct is None:
        raise DataError(f"unknown TOFU split {split!r}; use forget01, forget05 or forget10")

    def rd(cfg: str, opt: bool = False) -> list[dict] | None:
        return _records(source, TOFU_HUB, cfg, "train", _tofu_patterns(cfg), optional=opt)

    forget_rows = rd(f"{split}_perturbed", True) or rd(split)
    n_total = TOFU_AUTHOR_QAS * 200
    offset = n_total - len(forget_rows)  # forgetXX is the tail of `full`
    forget = [_tofu_item(r, f"TOFU {split}[{i}]", f"tofu_{split}_{i}", f"author{(offset + i) // TOFU_AUTHOR_QAS}")
              for i, r in enumerate(forget_rows)]
    retain_cfg = f"retain{100 - pct:02d}"
    retain_rows = rd(retain_cfg)
    retain = [_tofu_item(r, f"TOFU {retain_cfg}[{i}]", f"tofu_{retain_cfg}_{i}", f"author{i // TOFU_AUTHOR_QAS}")
              for i, r in enumerate(retain_rows)]
    rp_rows = rd("retain_perturbed", True) or []
    by_q = {it.question: it for it in retain}
    enriched, retain_eval = [], []
    for i, r in enumerate(rp_rows):
        base = by_q.pop(r.get("question"), None)
        item = _tofu_item(r, f"TOFU retain_perturbed[{i}]", base.id if base else f"tofu_retain_perturbed_{i}",
                          base.group if base else "")
        retain_eval.append(item)
        if base is not None:
            enriched.append(item)
    retain = enriched + [it for it in retain if it.question in by_q]
    hold_cfg = f"holdout{pct:02d}"
    holdout = [_tofu_item(r, f"TOFU {hold_cfg}[{i}]", f"tofu_{hold_cfg}_{i}", f"holdout_author{i // TOFU_AUTHOR_QAS}")
               for i, r in enumerate(rd(hold_cfg, True) or [])]
    extra: dict[str, list[QAItem]] = {}
    if eval_sets and retain_eval:
        # OpenUnlearning scores the retain statistics (probability, ROUGE, truth ratio: three of model
        # utility's nine parts) over every retain_perturbed item (TOFU_QA_retain_eval): the eval set named
        # "retain" replaces the training retain split in the audit (scoring.views.eval_sets_of).
        extra["retain"] = retain_eval
    if eval_sets:
        for name in ("real_authors", "world_facts"):
            rows = rd(f"{name}_perturbed", True)
            if rows:
                extra[name] = [_tofu_item(r, f"TOFU {name}_perturbed[{i}]", f"tofu_{name}_{i}", "")
                               for i, r in enumerate(rows)]
    task = ForgetTask(f"tofu_{split}", forget=forget, retain=retain, holdout=holdout, eval_sets=extra,
                      metadata={"benchmark": "tofu", "source": str(source), "split": split, "retain_split": retain_cfg,
                                "n_retain_perturbed": len(enriched)})
    task.validate()
    return task


# ---- MUSE ---------------------------------------------------------------------------------------
def _parquet_patterns(config: str, split: str) -> list[str]:
    return [f"{config}/{split}-*.parquet", f"{config}/{split}.parquet", f"{config}/{split}.jsonl",
            f"{config}/{split}.json"]


def _texts(rows: Iterable[dict], where: str) -> list[str]:
    return [_need(r, "text", f"{where}[{i}]") for i, r in enumerate(rows)]


def _qa(rows: Iterable[dict], where: str, prefix: str) -> list[QAItem]:
    return [QAItem(_need(r, "question", f"{where}[{i}]"), _need(r, "answer", f"{where}[{i}]"), id=f"{prefix}_{i}")
            for i, r in enumerate(rows)]


def load_muse(corpus: str = "news", source: str | Path | None = None, *, retain_split: str = "retain1",
              forget_config: str = "raw", forget_split: str = "forget") -> ForgetTask:
    """MUSE-News / MUSE-Books as a ForgetTask of raw texts plus the KnowMem / VerbMem / PrivLeak eval data.

    forget_texts: ``raw/forget`` (or e.g. ``forget_config="scal", forget_split="forget_2"`` for scalability,
    ``"sust"`` for sustainability); retain_texts: ``raw/{retain_split}`` (retain1, the regulariser MUSE's GDR/KLR
    use); holdout_texts: ``raw/holdout``. QA items are *evaluation* data only, in ``eval_sets``
    ``knowmem_forget`` / ``knowmem_retain`` (never trained on). ``metadata``: ``verbmem`` (prompt, gt records,
    read by the audit's ``verbmem`` set), ``privleak`` (forget / retain / holdout texts), ``knowmem_icl``
    (the 10 in-context examples per split), ``retain2_texts`` (the utility corpus).
    """
    key = corpus.lower()
    if key not in MUSE_HUB:
        raise DataError(f"unknown MUSE corpus {corpus!r}; use 'news' or 'books'")
    hub = MUSE_HUB[key]
    src = source if source is not None else hub

    def rd(cfg: str, sp: str, opt: bool = False) -> list[dict] | None:
        return _records(src, hub, cfg, sp, _parquet_patterns(cfg, sp), optional=opt)

    forget_texts = _texts(rd(forget_config, forget_split), f"MUSE {forget_config}/{forget_split}")
    retain_texts = _texts(rd("raw", retain_split), f"MUSE raw/{retain_split}")
    holdout_texts = _texts(rd("raw", "holdout", True) or [], "MUSE raw/holdout")
    retain2 = _texts(rd("raw", "retain2", True) or [], "MUSE raw/retain2")
    eval_sets = {f"knowmem_{s}": _qa(rd("knowmem", f"{s}_qa"), f"MUSE knowmem/{s}_qa", f"muse_{key}_knowmem_{s}")
                 for s in ("forget", "retain")}
    icl = {f"{s}_qa_icl": [{"question": it.question, "answer": it.answer}
                           for it in _qa(rd("knowmem", f"{s}_qa_icl", True) or [], "icl", "icl")]
           for s in ("forget", "retain")}
    verbmem = [{k: _need(r, k, f"MUSE verbmem/forget[{i}]") for k in ("prompt", "gt")}
               for i, r in enumerate(rd("verbmem", "forget", True) or [])]
    privleak = {s: _texts(rd("privleak", s, True) or [], f"MUSE privleak/{s}") for s in ("forget", "retain", "holdout")}
    task = ForgetTask(f"muse_{key}", forget=[], retain=[], eval_sets=eval_sets, forget_texts=forget_texts,
                      retain_texts=retain_texts, holdout_texts=holdout_texts,
                      metadata={"benchmark": "muse", "source": str(src), "corpus": key, "retain_split": retain_split,
                                "forget_split": f"{forget_config}/{forget_split}", "verbmem": verbmem,
                                "privleak": privleak, "knowmem_icl": icl, "retain2_texts": retain2})
    task.validate()
    return task


# ---- WMDP ---------------------------------------------------------------------------------------
WMDP_SUBSETS = ("bio", "chem", "cyber")
LETTERS = "ABCDEFGH"


def wmdp_prompt(question: str, choices: Sequence[str]) -> str:
    """The lm-eval-harness WMDP prompt body: question, lettered choices, then "Answer:" is added by the format."""
    return question.strip() + "\n" + "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def _wmdp_items(rows: list[dict], subset: str) -> list[QAItem]:
    items = []
    for i, r in enumerate(rows):
        where = f"WMDP wmdp-{subset}[{i}]"
        q, choices, ans = _need(r, "question", where), list(_need(r, "choices", where)), _need(r, "answer", where)
        if not isinstance(ans, int) or not 0 <= ans < len(choices):
            raise DataError(f"{where}: 'answer' must be the index of the correct choice, got {ans!r}")
        items.append(QAItem(wmdp_prompt(q, choices), LETTERS[ans], id=f"wmdp_{subset}_{i}", group=subset,
                            perturbed_answers=tuple(LETTERS[j] for j in range(len(choices)) if j != ans)))
    return items


def _corpus_patterns(name: str) -> list[str]:
    return [f"{name}.jsonl", f"wmdp-corpora/{name}.jsonl", f"{name}/*.parquet", f"{name}/*.jsonl",
            f"data/{name}-*.parquet", f"{name}-*.parquet"]


def load_wmdp(subsets: Sequence[str] = ("bio", "cyber"), source: str | Path = WMDP_HUB, *,
              corpora_source: str | Path | None = WMDP_CORPORA_HUB, max_corpus_texts: int | None = None) -> ForgetTask:
    """WMDP as a ForgetTask: forget / retain corpora as raw texts, the multiple-choice questions as eval sets.

    eval_sets ``wmdp_<subset>``: the question with lettered choices as the question and the correct letter as
    the answer (the other letters as perturbed answers, so answer-probability metrics act as multiple-choice
    scorers); ``metadata["multiple_choice"]`` keeps the raw (question, choices, answer) rows. Corpora (when
    ``corpora_source`` is given): ``<subset>-forget-corpus`` (bio needs gated access; skipped when absent) and
    ``<subset>-retain-corpus``; the bio forget corpus is also looked up in ``cais/wmdp-bio-forget-corpus``.
    """
    bad = [s for s in subsets if s not in WMDP_SUBSETS]
    if bad or not subsets:
        raise DataError(f"unknown WMDP subset(s) {bad or list(subsets)}; choose from {', '.join(WMDP_SUBSETS)}")
    eval_sets, raw = {}, {}
    for s in subsets:
        cfg = f"wmdp-{s}"
        rows = _records(source, WMDP_HUB, cfg, "test", [f"{cfg}/test-*.parquet", f"{cfg}/*.parquet", f"{cfg}.jsonl",
                                                        f"{cfg}.json"])
        eval_sets[f"wmdp_{s}"] = _wmdp_items(rows, s)
        raw[s] = [{"question": r["question"], "choices": list(r["choices"]), "answer": r["answer"]} for r in rows]
    forget_texts: list[str] = []
    retain_texts: list[str] = []
    missing: list[str] = []
    if corpora_source is not None:
        for s in subsets:
            for kind, out in (("forget", forget_texts), ("retain", retain_texts)):
                name = f"{s}-{kind}-corpus"
                rows = _records(corpora_source, WMDP_CORPORA_HUB, name, "train", _corpus_patterns(name), optional=True)
                if rows is None and name == "bio-forget-corpus" and not _is_local(corpora_source):
                    rows = _records("cais/wmdp-bio-forget-corpus", "cais/wmdp-bio-forget-corpus", None, "train", [],
                                    optional=True)
                if rows is None:
                    missing.append(name)
                    continue
                out.extend(_texts(rows[:max_corpus_texts] if max_corpus_texts else rows, f"WMDP {name}"))
    if not forget_texts:
        raise DatasetUnavailableError(
            f"WMDP: no forget corpus found for {', '.join(subsets)} "
            f"(missing: {', '.join(missing) or 'corpora_source=None'}). "
            f"Get `huggingface-cli download {WMDP_CORPORA_HUB} --repo-type dataset --local-dir <dir>` (bio forget: "
            "request access to cais/wmdp-bio-forget-corpus) and pass corpora_source=<dir>.")
    task = ForgetTask("wmdp_" + "_".join(subsets), forget=[], retain=[], eval_sets=eval_sets,
                      forget_texts=forget_texts, retain_texts=retain_texts,
                      metadata={"benchmark": "wmdp", "source": str(source), "corpora_source": str(corpora_source),
                                "multiple_choice": raw, "missing_corpora": missing})
    task.validate()
    return task


# ---- SemEval-2025 Task 4 --------------------------------------------------------------------------
def _semeval_items(rows: list[dict], where: str) -> list[QAItem]:
    out = []
    for i, r in enumerate(rows):
        w = f"{where}[{i}]"
        out.append(QAItem(_need(r, "input", w), _need(r, "output", w), id=str(_need(r, "id", w)),
                          group=str(_need(r, "task", w))))
    return out


def load_semeval25(source: str | Path = SEMEVAL25_HUB, *, fold: str = "train") -> ForgetTask:
    """SemEval-2025 Task 4 (public data) as a ForgetTask: ``forget_<fold>`` / ``retain_<fold>``.

    Items: question = ``input`` (a sentence prefix for ids ending "sc<k>", a question for "qa<k>"), answer =
    ``output``, id = ``id``, group = ``task`` (Task1 / Task2 / Task3, the sub-task `semeval_task_score`
    aggregates by). Local copies may also be the scorer's ``forget.jsonl`` / ``retain.jsonl``.
    """
    if fold not in ("train", "validation"):
        raise DataError(f"unknown SemEval-2025 fold {fold!r}; use 'train' or 'validation'")
    sets = {}
    for part in ("forget", "retain"):
        split = f"{part}_{fold}"
        rows = _records(source, SEMEVAL25_HUB, None, split, [f"data/{split}-*.parquet", f"{split}-*.parquet",
                                                              f"data/{split}.jsonl", f"{split}.jsonl", f"{part}.jsonl"])
        sets[part] = _semeval_items(rows, f"SemEval25 {split}")
    task = ForgetTask(f"semeval25_{fold}", forget=sets["forget"], retain=sets["retain"],
                      metadata={"benchmark": "semeval25", "source": str(source), "fold": fold})
    task.validate()
    return task
