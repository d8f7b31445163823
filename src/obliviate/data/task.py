"""ForgetTask: the forget, retain, holdout and evaluation sets of one unlearning request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class QAItem:
    """One question/answer pair, with the optional alternatives the TOFU-style metrics need.

    ``perturbed_answers`` are plausible but wrong answers (truth ratio); ``paraphrased_answer``
    says the same as ``answer`` in other words; ``question_paraphrases`` re-ask the question
    (paraphrase attack). ``group`` is the entity the item is about (an author id): splits are
    made by group so that no person is half-forgotten.
    """

    question: str
    answer: str
    id: str = ""
    group: str = ""
    paraphrased_answer: str | None = None
    perturbed_answers: tuple[str, ...] = ()
    question_paraphrases: tuple[str, ...] = ()
    alt_answer: str | None = None  # e.g. a refusal ("I don't know") for IdK-style methods
    # Earlier conversation turns before the question, as (role, content) pairs: the system prompt and
    # turns of a ``messages`` record, or in-context examples. The prompt format renders them.
    context: tuple[tuple[str, str], ...] = ()


@dataclass
class ForgetTask:
    """Everything one unlearning run and its audit need, as lists of QA items.

    forget / retain: what to remove and what to keep (the method trains on these).
    holdout: same distribution as forget but never trained on (MIA non-members).
    eval_sets: extra utility sets by name, e.g. "world_facts", "real_authors"; one named "retain" is the
    retain set the audit scores in place of ``retain`` (TOFU: retain_perturbed).
    raw texts (``forget_texts`` ...) serve MUSE-style verbatim memorisation.
    """

    name: str
    forget: list[QAItem]
    retain: list[QAItem]
    holdout: list[QAItem] = field(default_factory=list)
    eval_sets: dict[str, list[QAItem]] = field(default_factory=dict)
    forget_texts: list[str] = field(default_factory=list)
    retain_texts: list[str] = field(default_factory=list)
    holdout_texts: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    # Model builders a benchmark that knows its own training recipe provides (never serialised):
    # "retrain": (seed) -> the original recipe re-run on retain only (the ``retrain`` method);
    # "dp_base": (seed, epsilon) -> the DP-SGD-trained base model (the ``dp2`` method);
    # "shadow": (forget indices, seed) -> the original recipe on retain + those forget items (U-LiRA);
    # "retain_items": () -> all training data but the forget set, when it is more than ``retain``.
    builders: dict[str, Callable[..., Any]] = field(default_factory=dict, repr=False, compare=False)

    def validate(self) -> None:
        """Reject tasks no method can run on: an empty forget set, or forget/retain overlap."""
        if not self.forget and not self.forget_texts:
            raise ValueError(
                f"task {self.name!r}: the forget set is empty; give at least one example to forget "
                "(check the forget file or split name)."
            )
        forget_keys = {(it.question.strip(), it.answer.strip()) for it in self.forget}
        overlap = [it for it in self.retain if (it.question.strip(), it.answer.strip()) in forget_keys]
        if overlap:
            ex = overlap[0]
            raise ValueError(
                f"task {self.name!r}: {len(overlap)} retain example(s) also appear in the forget set "
                f"(first: question {ex.question!r}); remove them from the retain data, since a model "
                "cannot both forget and keep the same example."
            )
