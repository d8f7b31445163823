"""Metric agreement with OpenUnlearning on identical inputs (run by hand, not by CI).

Audits the peer's tiny Llama-3-template model on the peer's TOFU-format data with obliviate, in
the same chat format the peer evaluates in (system prompt "You are a helpful assistant.",
``date_string`` "10 Apr 2025", greedy generation of 200 new tokens, every forget item and the
retain-perturbed set), then lists every metric both tools compute beside the peer's
``TOFU_EVAL.json`` and the absolute difference.

    python benchmarks/vs_openunlearning/compare_metrics.py --model $SCRATCH/ou_tiny_model \
        --data $SCRATCH/ou_tofu --peer $SCRATCH/ou/saves/eval/tiny_eval/TOFU_EVAL.json

Build the peer first with ../shared/peer/setup_peer.sh and run its run_eval.sh.

``--peer_mask`` scores with the peer's attention mask (``input_ids != pad_token_id``, the library's
``attention_mask="non_pad"``), and the table then adds ``extraction_strength (peer rule)``: the
peer's value, 1/L instead of 0 when no suffix of the answer is predicted, computed from the same
scored arrays. With both, every difference left is the metric code's.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

# obliviate metric -> OpenUnlearning TOFU_EVAL.json key
PAIRS = {
    "forget_prob": "forget_Q_A_Prob", "forget_rouge": "forget_Q_A_ROUGE", "forget_truth_ratio": "forget_truth_ratio",
    "retain_prob": "retain_Q_A_Prob", "retain_rouge": "retain_Q_A_ROUGE", "retain_truth_ratio": "retain_Truth_Ratio",
    "real_authors_prob_normalised": "ra_Q_A_Prob_normalised", "real_authors_rouge": "ra_Q_A_ROUGE",
    "real_authors_truth_ratio": "ra_Truth_Ratio", "world_facts_prob_normalised": "wf_Q_A_Prob_normalised",
    "world_facts_rouge": "wf_Q_A_ROUGE", "world_facts_truth_ratio": "wf_Truth_Ratio",
    "model_utility": "model_utility", "extraction_strength": "extraction_strength", "mia_min_k": "mia_min_k",
}


def peer_es(is_argmax) -> float:
    """The peer's extraction strength of one answer: its loop leaves k at L-1 when no suffix
    matches, so that case gives 1/L (ours gives 0)."""
    from obliviate.metrics.memorization import extraction_strength

    h = np.asarray(is_argmax, bool)
    h = h[:-1] if h.size > 1 else h  # the EOS prediction is dropped, as in both tools
    value = extraction_strength(h, drop_last=False)
    return 1.0 / h.size if value == 0.0 and h.size else value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--peer", required=True, help="the peer's TOFU_EVAL.json for the same model")
    ap.add_argument("--split", default="forget10")
    ap.add_argument("--out", default="")
    ap.add_argument("--peer_mask", action="store_true", help="score with the peer's input_ids != pad mask")
    a = ap.parse_args()

    from obliviate.api import audit, prompt_format
    from obliviate.data.loaders import load_tofu
    from obliviate.models.loading import load_causal_lm
    from obliviate.scoring.cache import ScoringCache

    model, tok = load_causal_lm(a.model, dtype="float32")
    task = load_tofu(a.split, a.data)
    fmt = prompt_format(tok, "chat", system_prompt="You are a helpful assistant.",
                        template_vars={"date_string": "10 Apr 2025"})
    cache = ScoringCache(tok, fmt, max_new_tokens=200, attention_mask="non_pad" if a.peer_mask else "real")
    report = audit({"model": model}, task, tok, metrics=list(PAIRS), cache=cache)
    peer = json.loads(open(a.peer).read())
    values = {k: v.get("value") for k, v in report.models["model"].metrics.items()}
    pairs = dict(PAIRS)
    if a.peer_mask:  # the same forward pass, scored with the peer's no-match rule
        from obliviate.scoring.views import build_view
        view = build_view(model, "model", task, cache)
        values["extraction_strength (peer rule)"] = float(np.mean([peer_es(h) for h in view.need("forget").token_is_argmax]))
        pairs["extraction_strength (peer rule)"] = "extraction_strength"
    rows = []
    for ours, theirs in pairs.items():
        mine = values.get(ours)
        other = peer.get(theirs, {}).get("agg_value") if isinstance(peer.get(theirs), dict) else None
        diff = abs(mine - other) if mine is not None and other is not None else None
        rows.append({"metric": ours, "obliviate": mine, "openunlearning": other, "abs_diff": diff})
    print("| metric | obliviate | OpenUnlearning | abs diff |\n|---|---|---|---|")
    for r in rows:
        f = lambda v: "—" if v is None else f"{v:.6g}"  # noqa: E731
        print(f"| {r['metric']} | {f(r['obliviate'])} | {f(r['openunlearning'])} | {f(r['abs_diff'])} |")
    skipped = report.models["model"].skipped
    if skipped:
        print("skipped:", json.dumps(skipped, indent=1))
    if a.out:
        open(a.out, "w").write(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
