"""What the scoring cache stores per model and per evaluation set.

One forward pass per example gives everything the metrics need: the log-probability of every
answer token, whether that token was the argmax (exact memorisation, extraction strength) and
the full-vocabulary mean and variance of log p (Min-K%++). Greedy generations are cached
alongside when a metric needs text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ScoredSet:
    """Per-example outputs of one model on one list of (prompt, answer) pairs.

    Token arrays cover the answer tokens only, in order, and include the final scored token
    (EOS for QA data; none is appended for raw text). Metrics that follow the OpenUnlearning
    convention of dropping the final token (Min-K, Min-K++, exact memorisation, extraction
    strength) slice it off themselves and say so in their docstrings.
    """

    token_logprobs: list[np.ndarray]  # log p(y_t | y_<t, x), float64, one array per example
    token_is_argmax: list[np.ndarray]  # bool: y_t == argmax_v p(v | ...)
    token_vocab_mean: list[np.ndarray]  # mu_t = sum_v p_v log p_v
    token_vocab_var: list[np.ndarray]  # sigma_t^2 = sum_v p_v (log p_v)^2 - mu_t^2
    answers: list[str]  # the scored answer texts (zlib attack, ROUGE references)
    ids: list[str] = field(default_factory=list)
    generations: list[str] | None = None  # greedy continuations of the prompts, when requested

    def __len__(self) -> int:
        return len(self.token_logprobs)

    def mean_nll(self) -> np.ndarray:
        """Per-example mean negative log-likelihood over the answer tokens (the LOSS score)."""
        return np.array([-lp.mean() if lp.size else np.nan for lp in self.token_logprobs])


@dataclass
class AuditView:
    """Everything the metrics may read about one model: its scored sets by name.

    Standard set names for QA benchmarks: ``forget``, ``forget_para`` (paraphrased answers),
    ``retain``, ``retain_para``, ``holdout``, ``world_facts``, ``real_authors``; ``perturbed``
    maps a base set name to one ScoredSet per perturbed-answer index (all the same length as
    the base set). Raw-text sets (MUSE style) use ``forget_text``, ``retain_text``,
    ``holdout_text``. ``extra`` holds per-example arrays that are not token statistics (e.g.
    ``gradnorm:forget``).
    """

    model_name: str
    sets: dict[str, ScoredSet] = field(default_factory=dict)
    perturbed: dict[str, list[ScoredSet]] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def need(self, name: str) -> ScoredSet:
        """The scored set ``name``, or a clear error saying which set the metric needs."""
        try:
            return self.sets[name]
        except KeyError:
            raise KeyError(
                f"model {self.model_name!r}: this metric needs the scored set {name!r}, which the audit "
                f"did not produce (have: {', '.join(sorted(self.sets)) or 'none'})."
            ) from None

    def need_perturbed(self, name: str) -> list[ScoredSet]:
        try:
            return self.perturbed[name]
        except KeyError:
            raise KeyError(
                f"model {self.model_name!r}: this metric needs perturbed answers for {name!r}, which the "
                f"audit did not score (have: {', '.join(sorted(self.perturbed)) or 'none'})."
            ) from None
