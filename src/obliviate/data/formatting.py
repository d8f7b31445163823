"""One prompt format for every path: training, scoring, generation, gradient norms, ECO, attacks.

A `PromptFormat` renders a question (with optional earlier turns and a system prompt) as prompt
text through the tokenizer's chat template, plain tags or a user template string, and encodes a
(prompt, answer) pair into token ids with the loss on the answer tokens only.

Two rules hold in every path:

- **Exactly one BOS.** Text is tokenised with ``add_special_tokens=False`` (a chat template that
  writes ``bos_token`` into the text supplies it as text); `with_one_bos` then strips any leading
  BOS tokens and puts back exactly one whenever the tokenizer has a BOS token, whatever its
  ``add_bos_token`` setting and template do. Tokenizers without a BOS token (Qwen2) get none.
- **Spans are token offsets.** The prompt and the answer are tokenised separately and concatenated,
  so the boundary between "condition on" and "score" is exact (no re-tokenisation across the
  seam); the question's own tokens inside the prompt come from the tokenizer's offset mapping of a
  rendering whose question position is known by construction. Nothing searches text for a tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import torch
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100

# Earlier conversation turns: (role, content) pairs, e.g. (("system", "..."), ("user", "..."), ("assistant", "...")).
Turns = Sequence[tuple[str, str]]

_SLOT = "\u2063OBLIVIATE_QUESTION\u2063"  # stands in for the question while the template renders


class Prompt(str):
    """Rendered prompt text that remembers where the question sits (a character span).

    A `str`, so it concatenates, hashes and compares as its text; concatenation returns a plain `str`
    (the span no longer applies), which then encodes with the whole prompt as its question span.
    """

    question_span: tuple[int, int] | None

    def __new__(cls, text: str, question_span: tuple[int, int] | None = None) -> "Prompt":
        obj = super().__new__(cls, text)
        obj.question_span = question_span
        return obj


@dataclass(frozen=True)
class PromptFormat:
    """How a question becomes a prompt and an answer its scored continuation.

    ``kind``: ``"plain"`` tags (TOFU's base-model ``Question: ...\\nAnswer:``, the default),
    ``"chat"`` (the tokenizer's chat template with a generation prompt) or ``"template"`` (a user
    string with a ``{question}`` field, e.g. ``"### Q: {question}\\n### A:"``).
    ``system_prompt``: the system turn (chat), or text written before the prompt (plain/template).
    ``template_vars``: extra chat-template variables, e.g. ``{"date_string": "10 Apr 2025"}`` as
    OpenUnlearning passes for Llama-3. ``append_eos``: score an end of sequence after the answer
    (QA data); raw text (MUSE) does not.
    """

    kind: Literal["plain", "chat", "template"] = "plain"
    user_start: str = "Question: "
    assistant_start: str = "\nAnswer:"
    template: str | None = None
    system_prompt: str | None = None
    template_vars: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    append_eos: bool = True
    use_chat_template: bool = False  # older spelling of kind="chat"

    def __post_init__(self) -> None:
        if self.use_chat_template and self.kind == "plain":
            object.__setattr__(self, "kind", "chat")
        object.__setattr__(self, "use_chat_template", self.kind == "chat")
        if self.kind not in ("plain", "chat", "template"):
            raise ValueError(f"prompt format kind={self.kind!r}; choose plain, chat or template")
        if self.kind == "template" and (not self.template or "{question}" not in self.template):
            raise ValueError("a template prompt format needs `template` with a {question} field, "
                             f"e.g. '### Q: {{question}}\\n### A:' (got {self.template!r})")

    @classmethod
    def for_tokenizer(cls, tokenizer: PreTrainedTokenizerBase, kind: str = "auto", *,
                      system_prompt: str | None = None, template_vars: dict[str, Any] | None = None,
                      template: str | None = None) -> "PromptFormat":
        """``kind="auto"``: the chat template when the tokenizer has one, else the plain tags (or
        ``template`` when one is given)."""
        if kind == "auto":
            kind = "template" if template else ("chat" if getattr(tokenizer, "chat_template", None) else "plain")
        if kind == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt format 'chat' needs a tokenizer with a chat template; this tokenizer has "
                             "none (use --prompt_format plain, or a template string)")
        return cls(kind=kind, system_prompt=system_prompt, template_vars=dict(template_vars or {}),
                   template=template)

    def to_dict(self) -> dict[str, Any]:
        """The settings a run record stores (enough to rebuild this format with ``for_tokenizer``)."""
        return {"kind": self.kind, "system_prompt": self.system_prompt, "template_vars": dict(self.template_vars),
                "template": self.template}

    # ---- rendering -------------------------------------------------------------------------
    def _messages(self, question: str, context: Turns) -> list[dict[str, str]]:
        msgs = [{"role": r, "content": c} for r, c in context]
        if self.system_prompt and not any(m["role"] == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        return msgs + [{"role": "user", "content": question}]

    def _plain_turn(self, question: str) -> str:
        return self.template.format(question=question) if self.kind == "template" else (
            f"{self.user_start}{question}{self.assistant_start}")

    def prompt(self, question: str, tokenizer: PreTrainedTokenizerBase | None = None, context: Turns = ()) -> Prompt:
        """The prompt text for ``question`` after the earlier turns ``context``, with the question's
        character span."""
        if self.kind == "chat":
            if tokenizer is None or not getattr(tokenizer, "chat_template", None):
                raise ValueError("prompt format 'chat' needs a tokenizer with a chat template")
            render = lambda q: tokenizer.apply_chat_template(  # noqa: E731
                self._messages(q, context), tokenize=False, add_generation_prompt=True, **self.template_vars)
            text = render(question)
            slotted = render(_SLOT)
            if slotted.count(_SLOT) == 1:
                pre, post = slotted.split(_SLOT)
                if pre + question + post == text:
                    return Prompt(text, (len(pre), len(pre) + len(question)))
            return Prompt(text, None)  # a template that rewrites the content: whole prompt is the span
        head = ""
        system = self.system_prompt
        for role, content in context:
            if role == "system":
                system = content
            elif role == "user":
                head += self._plain_turn(content)
            else:
                head += self.answer(content) + "\n\n"
        head = (system + "\n\n" if system else "") + head
        pre, post = (head + self._plain_turn(_SLOT)).split(_SLOT)
        return Prompt(pre + question + post, (len(pre), len(pre) + len(question)))

    def answer(self, answer: str, tokenizer: PreTrainedTokenizerBase | None = None) -> str:
        """The answer as scored after the prompt. Tag formats end the prompt with a space-free tag, so
        the answer carries its own leading space (one token boundary for every tokenizer); a chat
        answer is the content followed by the template's end of turn (when ``tokenizer`` is given)."""
        if self.kind != "chat":
            return " " + answer.lstrip()
        return answer.strip() + (self._end_of_turn(tokenizer) if tokenizer is not None else "")

    def _end_of_turn(self, tokenizer: PreTrainedTokenizerBase) -> str:
        """What the chat template writes after an assistant message's content (e.g. ``<|eot_id|>``)."""
        key = id(tokenizer), getattr(tokenizer, "chat_template", None)
        cached = _EOT_CACHE.get(key)
        if cached is None:
            full = tokenizer.apply_chat_template(
                [{"role": "user", "content": "q"}, {"role": "assistant", "content": _SLOT}], tokenize=False,
                **self.template_vars)
            cached = full.split(_SLOT, 1)[1] if full.count(_SLOT) == 1 else ""
            _EOT_CACHE[key] = cached
        return cached

    # ---- encoding --------------------------------------------------------------------------
    def encode(self, tokenizer: PreTrainedTokenizerBase, question: str, answer: str, *, context: Turns = (),
               max_length: int = 512, append_eos: bool | None = None) -> "Encoded":
        """Token ids of prompt + answer, with the prompt, question and answer spans."""
        return encode_pair(tokenizer, self.prompt(question, tokenizer, context), self.answer(answer, tokenizer),
                           append_eos=self.append_eos if append_eos is None else append_eos, max_length=max_length)

    def encode_prompt(self, tokenizer: PreTrainedTokenizerBase, question: str, context: Turns = (),
                      max_length: int = 512) -> "Encoded":
        """Token ids of the prompt alone (generation input)."""
        return encode_pair(tokenizer, self.prompt(question, tokenizer, context), "", append_eos=False,
                           max_length=max_length)


_EOT_CACHE: dict[tuple[int, Any], str] = {}


@dataclass
class Encoded:
    """One tokenised example: ``input_ids`` = prompt + answer.

    ``n_prompt`` leading tokens are not scored; ``question_span`` = (start, end) token offsets of the
    user's question inside the prompt (the whole prompt after BOS when unknown); ``n_answer`` answer
    tokens (EOS / end of turn included) follow the prompt.
    """

    input_ids: list[int]
    n_prompt: int
    question_span: tuple[int, int] = (0, 0)

    @property
    def answer_span(self) -> tuple[int, int]:
        return self.n_prompt, len(self.input_ids)


def with_one_bos(ids: list[int], tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], int]:
    """``ids`` with exactly one leading BOS when the tokenizer has a BOS token (none otherwise), and
    the shift applied to the positions of the tokens that followed the leading BOS run."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return list(ids), 0
    n = 0
    while n < len(ids) and ids[n] == bos:
        n += 1
    return [bos] + list(ids[n:]), 1 - n


def _tokenise(tokenizer: PreTrainedTokenizerBase, text: str, span: tuple[int, int] | None
              ) -> tuple[list[int], tuple[int, int] | None]:
    """Ids of ``text`` without added special tokens, and the token span covering character ``span``."""
    if not text:
        return [], None
    if span is not None and getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        inside = [i for i, (s, e) in enumerate(offs) if e > span[0] and s < span[1] and e > s]
        return ids, ((inside[0], inside[-1] + 1) if inside else None)
    if span is not None:  # slow tokenizers: the three pieces separately (exact spans by construction)
        pieces = [tokenizer(t, add_special_tokens=False)["input_ids"] if t else []
                  for t in (text[:span[0]], text[span[0]:span[1]], text[span[1]:])]
        return pieces[0] + pieces[1] + pieces[2], (len(pieces[0]), len(pieces[0]) + len(pieces[1]))
    return tokenizer(text, add_special_tokens=False)["input_ids"], None


def encode_pair(tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str, *, append_eos: bool = True,
                max_length: int = 512, add_special_tokens: bool = True) -> Encoded:
    """Tokenise ``prompt`` and ``answer`` separately and concatenate them, with exactly one BOS first
    (when the tokenizer has one) and an EOS after the answer when ``append_eos`` and the answer does
    not already end its turn with one. ``add_special_tokens=False`` leaves out the BOS."""
    p_ids, q_span = _tokenise(tokenizer, prompt, getattr(prompt, "question_span", None) or (0, len(prompt)))
    shift = 0
    if add_special_tokens:
        p_ids, shift = with_one_bos(p_ids, tokenizer)
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] if answer else []
    eos = tokenizer.eos_token_id
    if eos is not None and eos in a_ids:
        a_ids = a_ids[:a_ids.index(eos) + 1]  # nothing after the end of turn is scored (e.g. a newline)
    elif append_eos and eos is not None and answer:
        a_ids = a_ids + [eos]
    ids = (p_ids + a_ids)[:max_length]
    n_prompt = min(len(p_ids), len(ids))
    if q_span is None:
        q_span = (0, len(p_ids) - shift)
    qs = (max(0, q_span[0] + shift), max(0, min(n_prompt, q_span[1] + shift)))
    if add_special_tokens and tokenizer.bos_token_id is not None:
        qs = (max(1, qs[0]), max(1, qs[1]))  # the BOS never belongs to the question
    return Encoded(ids, n_prompt, qs)


def collate(examples: Sequence[Encoded], pad_id: int, prompt_mask: bool = False) -> dict[str, torch.Tensor]:
    """Right-pad a batch; labels are -100 on the prompt and on padding (never scored). With
    ``prompt_mask``, also a mask that is 1 on each example's question tokens (what ECO corrupts)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    qmask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        labels[i, e.n_prompt:n] = torch.tensor(e.input_ids[e.n_prompt:])
        qmask[i, e.question_span[0]:e.question_span[1]] = 1
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    return {**out, "prompt_mask": qmask} if prompt_mask else out
