"""The public benchmarks from the command line, as users type it, on the upstream-schema fixtures.

The TOFU test recomputes every headline metric by hand (a forward pass and ``generate`` per item, the
formulas written out here) under the OpenUnlearning defaults: 200 new tokens, every forget item, the
retain statistics over ``retain_perturbed``, real authors, world facts and the holdout set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from obliviate.cli import main

FIX = Path(__file__).resolve().parents[1] / "fixtures"
TOFU_HEADLINE = ("forget_quality", "model_utility", "forget_truth_ratio", "forget_prob", "forget_rouge", "privleak",
                 "extraction_strength")


def _fixture_texts() -> list[str]:
    import pyarrow.parquet as pq

    texts = [line for f in sorted(FIX.rglob("*.json*")) for line in f.read_text().splitlines()]
    return texts + [json.dumps(r) for f in sorted(FIX.rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tokenizer on the fixture texts; "target" fine-tuned on every TOFU fixture QA but the holdout,
    "retain" on the same minus the forget set (so forget quality, PrivLeak and ROUGE are not degenerate)."""
    from obliviate.data.formatting import PromptFormat
    from obliviate.data.loaders import load_tofu
    from obliviate.models.loading import save_model_atomic
    from obliviate.models.tiny import TinyLlamaConfig, build_tiny_llama, train_tokenizer
    from obliviate.train.sft import SFTConfig, sft

    root = tmp_path_factory.mktemp("public_models")
    tok = train_tokenizer(_fixture_texts(), vocab_size=400)
    fmt = PromptFormat.for_tokenizer(tok, "auto")
    task = load_tofu("forget01", FIX / "tofu")
    keep = task.retain + [it for k in ("retain", "real_authors", "world_facts") for it in task.eval_sets[k]]
    out = {}
    for name, items in (("target", task.forget + keep), ("retain", keep)):
        m = build_tiny_llama(len(tok), TinyLlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                       intermediate_size=64, max_position_embeddings=512),
                             seed=0, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id)
        sft(m, tok, [fmt.encode(tok, it.question, it.answer) for it in items],
            SFTConfig(steps=40, lr=1e-2, batch_size=16, warmup_steps=4))
        out[name] = save_model_atomic(m, tok, root / name)
    return out


# ---- hand computation --------------------------------------------------------------------------------
class Hand:
    """The TOFU statistics of one model, computed item by item without the scoring cache."""

    def __init__(self, path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from obliviate.data.formatting import PromptFormat

        self.model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True).eval()
        self.tok = AutoTokenizer.from_pretrained(path)
        self.fmt = PromptFormat.for_tokenizer(self.tok, "auto")

    @torch.no_grad()
    def token_stats(self, q: str, a: str) -> tuple[np.ndarray, np.ndarray]:
        """log p of each answer token (EOS included) and whether it was the argmax."""
        e = self.fmt.encode(self.tok, q, a)
        ids = torch.tensor([e.input_ids])
        logits = self.model(input_ids=ids).logits[0, :-1].float()
        tgt = ids[0, 1:]
        lp = torch.log_softmax(logits, -1).gather(-1, tgt[:, None])[:, 0]
        s = e.n_prompt - 1  # logits[t] predicts token t + 1
        return lp[s:].double().numpy(), (logits.argmax(-1) == tgt)[s:].numpy()

    def nll(self, q: str, a: str) -> float:
        return float(-self.token_stats(q, a)[0].mean())

    @torch.no_grad()
    def generate(self, q: str, n_new: int = 200) -> str:
        e = self.fmt.encode_prompt(self.tok, q)
        ids = torch.tensor([e.input_ids])
        out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new,
                                  do_sample=False, pad_token_id=self.tok.pad_token_id,
                                  eos_token_id=self.tok.eos_token_id)
        return self.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()

    def rouge_recall(self, items) -> float:
        from rouge_score import rouge_scorer

        sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        return float(np.mean([sc.score(it.answer, self.generate(it.question))["rougeL"].recall for it in items]))

    def ratios(self, items, para: bool) -> np.ndarray:
        """R_i = exp(-mean_k NLL(perturbed_k)) / (exp(-NLL(paraphrase, or answer)) + 1e-10)."""
        out = []
        for it in items:
            wrong = np.mean([self.nll(it.question, p) for p in it.perturbed_answers])
            right = self.nll(it.question, it.paraphrased_answer if para else it.answer)
            out.append(np.exp(-wrong) / (np.exp(-right) + 1e-10))
        return np.array(out)

    def min_k(self, items) -> np.ndarray:
        out = []
        for it in items:
            lp = self.token_stats(it.question, it.answer)[0][:-1]  # EOS dropped (OpenUnlearning)
            n = max(1, int(np.floor(0.4 * lp.size)))
            out.append(-np.sort(lp)[:n].mean())
        return np.array(out)

    def min_k_auc(self, task) -> float:
        from sklearn.metrics import roc_auc_score

        f, h = self.min_k(task.forget), self.min_k(task.holdout)
        return float(roc_auc_score(np.r_[np.zeros(len(f)), np.ones(len(h))], np.r_[f, h]))

    def extraction_strength(self, items) -> float:
        vals = []
        for it in items:
            hit = self.token_stats(it.question, it.answer)[1][:-1]
            k = len(hit)
            while k > 0 and hit[k - 1]:
                k -= 1
            vals.append(1 - k / len(hit))
        return float(np.mean(vals))

    def utility_parts(self, task) -> dict[str, float]:
        ret = task.eval_sets["retain"]  # retain_perturbed, as OpenUnlearning scores it
        parts = {"retain_prob": float(np.mean([np.exp(-self.nll(it.question, it.answer)) for it in ret])),
                 "retain_rouge": self.rouge_recall(ret),
                 "retain_truth_ratio": float(np.mean(np.maximum(0, 1 - self.ratios(ret, para=True))))}
        for base in ("real_authors", "world_facts"):
            items = task.eval_sets[base]
            norm = []
            for it in items:
                pt = np.exp(-self.nll(it.question, it.answer))
                pp = sum(np.exp(-self.nll(it.question, p)) for p in it.perturbed_answers)
                norm.append(pt / (pt + pp))
            parts[f"{base}_prob_normalised"] = float(np.mean(norm))
            parts[f"{base}_rouge"] = self.rouge_recall(items)
            parts[f"{base}_truth_ratio"] = float(np.mean(np.maximum(0, 1 - self.ratios(items, para=False))))
        return parts


@pytest.mark.slow
def test_tofu_audit_prints_every_headline_metric_and_each_equals_the_hand_computation(models, tmp_path, capsys):
    from scipy.stats import hmean, ks_2samp

    from obliviate.data.loaders import load_tofu

    out = tmp_path / "audit.json"
    main(["audit", "--benchmark", "tofu", "--split", "forget01", "--source", str(FIX / "tofu"),
          "--model", f"target={models['target']}", "--model", f"retain={models['retain']}", "--reference", "retain",
          "--out", str(out)])
    printed = capsys.readouterr().out
    rep = json.loads(out.read_text())
    # Every headline metric is computed for the target (none skipped), and the table has a column for each.
    tgt = rep["models"]["target"]
    assert not set(TOFU_HEADLINE) & set(tgt["skipped"]), tgt["skipped"]
    for m in TOFU_HEADLINE:
        assert m[:10] in printed, m
    assert "skipped" not in printed.split("scored:")[0]
    # OpenUnlearning's defaults: 200 new tokens, every forget item, retain_perturbed (2 items) as the retain set.
    assert rep["task"]["max_new_tokens"] == 200 and rep["task"]["eval_limits"] == {}
    assert rep["task"]["attention_mask"] == "real"
    assert rep["task"]["n_scored"] == {"forget": 3, "retain": 2, "holdout": 2, "real_authors": 1, "world_facts": 2}
    assert "200 new tokens" in printed and "retain 2" in printed

    task = load_tofu("forget01", FIX / "tofu")
    t, r = Hand(models["target"]), Hand(models["retain"])
    val = {m: tgt["metrics"][m]["value"] for m in TOFU_HEADLINE}
    r_t, r_r = t.ratios(task.forget, para=True), r.ratios(task.forget, para=True)
    # rel 1e-6: the audit's float32 passes (shared prompt prefill, other batch shapes) and the hand's agree to ~1e-8
    assert val["forget_truth_ratio"] == pytest.approx(np.mean(np.minimum(r_t, 1 / r_t)), rel=1e-6)
    assert val["forget_quality"] == pytest.approx(ks_2samp(r_t, r_r).pvalue, abs=1e-12)
    assert val["forget_prob"] == pytest.approx(np.mean([np.exp(-t.nll(i.question, i.answer)) for i in task.forget]),
                                               rel=1e-7)
    assert val["forget_rouge"] == pytest.approx(t.rouge_recall(task.forget), abs=1e-12)
    auc_t, auc_r = t.min_k_auc(task), r.min_k_auc(task)
    assert val["privleak"] == pytest.approx(((1 - auc_t) - (1 - auc_r)) / ((1 - auc_r) + 1e-10) * 100, abs=1e-6)
    assert val["extraction_strength"] == pytest.approx(t.extraction_strength(task.forget), abs=1e-12)
    parts = t.utility_parts(task)
    got = tgt["metrics"]["model_utility"]["details"]["parts"]
    assert set(got) == set(parts)  # all nine parts, the retain ones included
    for k, v in parts.items():
        assert got[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    assert val["model_utility"] == pytest.approx(hmean(list(parts.values())) if min(parts.values()) > 0 else 0.0,
                                                 rel=1e-6)
    assert val["model_utility"] > 0 and val["forget_rouge"] > 0  # the fine-tuned models make them informative


@pytest.mark.slow
def test_reference_logs_stand_in_for_the_retain_model(models, tmp_path, capsys):
    """An OpenUnlearning TOFU_EVAL.json of the retain model (its per-item forget truth ratios and Min-K AUC)
    gives the same forget quality and PrivLeak as the retain model itself."""
    from obliviate.data.loaders import load_tofu

    task = load_tofu("forget01", FIX / "tofu")
    r = Hand(models["retain"])
    logs = {"forget_truth_ratio": {"agg_value": 0.0, "value_by_index": {
                str(i): {"score": float(v)} for i, v in enumerate(r.ratios(task.forget, para=True))}},
            "mia_min_k": {"agg_value": r.min_k_auc(task)}}
    (tmp_path / "TOFU_EVAL.json").write_text(json.dumps(logs))
    runs = {}
    for how in (["--reference", "retain", "--model", f"retain={models['retain']}"],
                ["--reference_logs", str(tmp_path / "TOFU_EVAL.json")]):
        out = tmp_path / f"a{len(runs)}.json"
        main(["audit", "--benchmark", "tofu", "--split", "forget01", "--source", str(FIX / "tofu"), "--model",
              f"target={models['target']}", *how, "--metrics", "forget_quality", "privleak", "--max_new_tokens", "1",
              "--out", str(out)])
        runs[len(runs)] = json.loads(out.read_text())["models"]["target"]["metrics"]
    for m in ("forget_quality", "privleak"):
        assert runs[1][m]["value"] == pytest.approx(runs[0][m]["value"], abs=1e-9)
    # logs of another forget split are refused
    logs["forget_truth_ratio"]["value_by_index"]["7"] = {"score": 1.0}
    (tmp_path / "TOFU_EVAL.json").write_text(json.dumps(logs))
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["audit", "--benchmark", "tofu", "--split", "forget01", "--source", str(FIX / "tofu"), "--model",
              f"target={models['target']}", "--reference_logs", str(tmp_path / "TOFU_EVAL.json"),
              "--out", str(tmp_path / "never.json")])
    assert e.value.code == 2 and "4 forget truth ratios" in capsys.readouterr().err
    assert not (tmp_path / "never.json").exists()


def test_audit_scores_with_the_peer_mask_when_asked_and_records_it(models, tmp_path):
    """--attention_mask non_pad reaches the scoring cache: the forget probability equals a cache
    built with that mask by hand, and the report records the mask."""
    from obliviate.api import audit_task, load_model, prompt_format
    from obliviate.metrics.tofu import answer_probability
    from obliviate.scoring.cache import ScoringCache
    from obliviate.scoring.views import build_view

    out = tmp_path / "audit.json"
    main(["audit", "--benchmark", "tofu", "--split", "forget01", "--source", str(FIX / "tofu"), "--model",
          f"target={models['target']}", "--metrics", "forget_prob", "--max_new_tokens", "1",
          "--attention_mask", "non_pad", "--out", str(out)])
    rep = json.loads(out.read_text())
    assert rep["task"]["attention_mask"] == "non_pad"
    model, tok = load_model(models["target"])
    task = audit_task("tofu", "forget01", str(FIX / "tofu"))
    cache = ScoringCache(tok, prompt_format(tok, "auto"), max_new_tokens=1, attention_mask="non_pad")
    want = float(answer_probability(build_view(model, "t", task, cache).need("forget").mean_nll()).mean())
    assert rep["models"]["target"]["metrics"]["forget_prob"]["value"] == pytest.approx(want, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("benchmark,split,source,headline", [
    ("muse", "news", "muse_news", ("verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak_muse")),
    ("wmdp", "bio,cyber", "wmdp", ("wmdp_accuracy",)),
    ("semeval25", "train", "semeval25", ("semeval_task_score",)),
])
def test_unlearn_then_audit_each_public_benchmark_from_the_cli(models, tmp_path, capsys, benchmark, split, source,
                                                               headline):
    out = tmp_path / "unlearned"
    main(["unlearn", "--method", "ga", "--benchmark", benchmark, "--split", split, "--source", str(FIX / source),
          "--model", str(models["target"]), "--out", str(out), "--train", "max_steps=1", "--train", "batch_size=2",
          "--train", "progress=false"])
    run = json.loads((out / "run.json").read_text())
    assert run["task"].startswith(benchmark) and run["log"]["steps"] == 1
    capsys.readouterr()
    main(["audit", "--benchmark", benchmark, "--split", split, "--source", str(FIX / source),
          "--model", f"target={models['target']}", "--model", f"ga={out}", "--model", f"retain={models['retain']}",
          "--reference", "retain", "--target", "target", "--attacks", "quantize_int8", "--max_new_tokens", "16",
          "--metrics", *headline, "forget_prob", "--out", str(tmp_path / "a.json")])
    printed = capsys.readouterr().out
    rep = json.loads((tmp_path / "a.json").read_text())
    for m in headline:
        assert rep["models"]["ga"]["metrics"][m]["value"] is not None or m == "privleak_muse", m
        assert m[:10] in printed
    assert rep["models"]["target"]["role"] == "target" and rep["models"]["retain"]["role"] == "oracle"
    assert any("recovered_share" in row for row in rep["tables"]["attacks"] if row["model"] == "ga")


@pytest.mark.parametrize("argv,option,fix", [
    (["--benchmark", "tofuu"], "--benchmark", "tofu, muse, wmdp, semeval25"),
    (["--benchmark", "tofu", "--split", "forget07"], "--split", "forget01, forget05 or forget10"),
    (["--benchmark", "muse", "--split", "forget10"], "--split", "news or books"),
    (["--benchmark", "tofu", "--source", "/nonexistent/tofu"], "--source", "huggingface-cli download locuslab/TOFU"),
    (["--benchmark", "tofu", "--source", str(FIX / "tofu")], "--split forget10", "forget01"),  # no forget10 files
])
def test_bad_benchmark_inputs_exit_2_naming_the_option_and_write_nothing(tmp_path, capsys, argv, option, fix):
    for cmd in (["audit", "--model", f"m={tmp_path / 'missing'}", "--out", str(tmp_path / "a.json")],
                ["unlearn", "--method", "ga", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "u")]):
        with pytest.raises(SystemExit) as e:
            main(cmd + argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and option in err and fix in err, err
        assert list(tmp_path.iterdir()) == []


def test_offline_hub_source_is_the_dataset_unavailable_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as e:
        main(["audit", "--benchmark", "tofu", "--source", "locuslab/TOFU", "--model", f"m={tmp_path / 'x'}",
              "--out", str(tmp_path / "a.json")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "locuslab/TOFU" in err and "--local-dir" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_bench_muse_gives_the_six_way_table(models, tmp_path, capsys):
    """C1-C4 per method against the retrained oracle, C5 over scal/forget_1..2, C6 over sust/forget_1..2."""
    out = tmp_path / "bench"
    main(["bench", "--benchmark", "muse", "--split", "news", "--source", str(FIX / "muse_news"),
          "--model", str(models["target"]), "--reference", str(models["retain"]), "--methods", "ga", "npo",
          "--train", "max_steps=1", "--train", "batch_size=2", "--max_new_tokens", "8", "--out_dir", str(out)])
    printed = capsys.readouterr().out
    rep = json.loads((out / "report.json").read_text())
    for name in ("ga", "npo"):
        got = rep["models"][name]["metrics"]
        assert {"verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak_muse"} <= set(got)
        assert rep["models"][name]["run"]["steps"] == 1
    assert rep["models"]["oracle"]["metrics"]["privleak_muse"]["value"] == 0.0
    scal, sust = rep["tables"]["scalability"], rep["tables"]["sustainability"]
    assert [(r["method"], r["split"], r["n_forget_texts"]) for r in scal] == [
        ("ga", "scal/forget_1", 1), ("ga", "scal/forget_2", 2),
        ("npo", "scal/forget_1", 1), ("npo", "scal/forget_2", 2)]
    assert [(r["method"], r["request"]) for r in sust] == [("ga", 0), ("ga", 1), ("ga", 2), ("npo", 0), ("npo", 1),
                                                           ("npo", 2)]
    assert all("knowmem_retain" in r for r in scal + sust)
    for title in ("C1-C4", "C5 scalability", "C6 sustainability", "privleak_muse"):
        assert title in printed
    assert (out / "report.html").exists()


def test_bench_muse_only_options_are_refused_elsewhere(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--benchmark", "fictional_authors", "--source", str(FIX / "muse_news"),
              "--out_dir", str(tmp_path / "b")])
    assert e.value.code == 2 and "--source: muse-only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["bench", "--benchmark", "muse", "--split", "forget10", "--source", str(FIX / "muse_news"),
              "--out_dir", str(tmp_path / "b")])
    assert e.value.code == 2 and "news or books" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
