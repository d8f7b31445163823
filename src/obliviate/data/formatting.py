"""Turn QA items into token ids with loss on the answer tokens only.

The prompt and the answer are tokenised separately and concatenated, so the boundary between
"condition on" and "score" is exact for every tokenizer (no re-tokenisation across the seam).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


@dataclass(frozen=True)
class PromptFormat:
    """How a question becomes a prompt. TOFU's base-model tags are the default.

    ``use_chat_template``: format with the tokenizer's chat template instead (instruct models).
    ``append_eos``: score an EOS after the answer (QA data). Raw text (MUSE) does not append one.
    """

    user_start: str = "Question: "
    assistant_start: str = "\nAnswer:"
    use_chat_template: bool = False
    system_prompt: str | None = None
    append_eos: bool = True

    def prompt(self, question: str, tokenizer: PreTrainedTokenizerBase | None = None) -> str:
        if self.use_chat_template:
            if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
                raise ValueError("use_chat_template=True but the tokenizer has no chat template")
            msgs = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + [
                {"role": "user", "content": question}
            ]
            return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return f"{self.user_start}{question}{self.assistant_start}"

    def answer(self, answer: str) -> str:
        """The answer as scored after the prompt: tag formats end the prompt with a space-free tag,
        so the answer carries its own leading space (one token boundary for every tokenizer)."""
        return answer if self.use_chat_template else " " + answer.lstrip()


@dataclass
class Encoded:
    """One tokenised example: ``input_ids`` = prompt + answer; ``n_prompt`` tokens are not scored."""

    input_ids: list[int]
    n_prompt: int


def encode_pair(tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str, *, append_eos: bool = True,
                max_length: int = 512, add_special_tokens: bool = True) -> Encoded:
    """Tokenise ``prompt`` (with BOS when the tokenizer adds one) and ``answer`` (+ EOS)."""
    p_ids = tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"] if prompt else []
    if not p_ids and tokenizer.bos_token_id is not None and add_special_tokens:
        p_ids = [tokenizer.bos_token_id]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if append_eos and tokenizer.eos_token_id is not None:
        a_ids = a_ids + [tokenizer.eos_token_id]
    ids = (p_ids + a_ids)[:max_length]
    return Encoded(ids, min(len(p_ids), len(ids)))


def collate(examples: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; labels are -100 on the prompt and on padding (never scored)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        labels[i, e.n_prompt:n] = torch.tensor(e.input_ids[e.n_prompt:])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
