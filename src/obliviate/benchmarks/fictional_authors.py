"""The built-in benchmark: fictional authors, with an exact retrain oracle.

TOFU-like (Maini et al., arXiv 2401.06121) and generated deterministically from a seed:
fictional people with ~10 attributes each, QA pairs with paraphrased and perturbed answers,
held-out people (never trained on: MIA non-members), real-author and world facts (utility).

Models (small Llama, trained from scratch on CPU in minutes):
1. **base**: pre-trained on world facts and real-author facts;
2. **target**: base fine-tuned on every author (plus world-fact replay);
3. **oracle**: base fine-tuned on the retain authors only: same code, seed, steps and schedule.
All three are cached under ``$OBLIVIATE_CACHE`` (default ``~/.cache/obliviate``) keyed by a hash
of the recipe, so a second run reuses them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from obliviate.benchmarks.fictional_authors_data import FictionalWorld, generate_world, split_forget, world_fingerprint
from obliviate.data.formatting import PromptFormat, encode_pair
from obliviate.data.task import ForgetTask, QAItem
from obliviate.models.loading import save_model_atomic
from obliviate.models.tiny import TinyLlamaConfig, build_tiny_llama, train_tokenizer
from obliviate.config import digest
from obliviate.registry import register
from obliviate.train.sft import SFTConfig, sft

SPLITS = ("forget01", "forget05", "forget10")
# DP-SGD phase of the DP2Unlearning base (not part of the recipe hash: it only adds models).
DP_EPOCHS = 10
DP_LR = 2e-3
RECIPE_VERSION = 3  # bump when the training code changes what a recipe produces


@dataclass(frozen=True)
class FictionalAuthorsRecipe:
    """Everything that decides the benchmark's data and models (hashed into the cache key)."""

    seed: int = 0
    n_authors: int = 50
    n_heldout: int = 10
    n_world_facts: int = 120
    vocab_size: int = 2048
    model: TinyLlamaConfig = field(default_factory=TinyLlamaConfig)
    pretrain: SFTConfig = field(default_factory=lambda: SFTConfig(steps=400, lr=3e-3, batch_size=32))
    finetune: SFTConfig = field(default_factory=lambda: SFTConfig(steps=900, lr=2e-3, batch_size=32, warmup_steps=20))
    world_replay: int = 1  # copies of world/real-author QA mixed into fine-tuning (keeps utility measurable)

    def key(self) -> str:
        return digest({"v": RECIPE_VERSION, **dataclasses.asdict(self)})


def cache_root() -> Path:
    """Cache folder: ``$OBLIVIATE_CACHE`` or ``~/.cache/obliviate``."""
    return Path(os.environ.get("OBLIVIATE_CACHE", Path.home() / ".cache" / "obliviate"))


def _qa_examples(items, tok, fmt: PromptFormat):
    return [encode_pair(tok, fmt.prompt(it.question), fmt.answer(it.answer)) for it in items]


def _surface_forms(items: Sequence[QAItem]) -> list[QAItem]:
    """Each author fact in two surface forms: the question answered with ``answer`` and with
    ``paraphrased_answer``. A large LM knows a fact beyond one phrasing; a tiny model only does if
    it sees two, and without that the truth ratio (paraphrased vs perturbed answers) cannot tell
    a model that knows the fact from one that does not. Question paraphrases are never trained
    on (the paraphrase attack uses them); unlearning methods see only the (question, answer) pair."""
    return list(items) + [dataclasses.replace(it, answer=it.paraphrased_answer)
                          for it in items if it.paraphrased_answer]


def _fact_examples(items, tok, fmt: PromptFormat):
    """The training examples of author facts: both surface forms (:func:`_surface_forms`)."""
    return _qa_examples(_surface_forms(items), tok, fmt)


def _text_examples(texts, tok):
    return [encode_pair(tok, "", t, append_eos=True) for t in texts]


@dataclass
class FictionalAuthors:
    """A built (or loaded) benchmark: the world, the tokenizer and the model directories."""

    recipe: FictionalAuthorsRecipe
    world: FictionalWorld
    root: Path
    fmt: PromptFormat = field(default_factory=PromptFormat)

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    def model_dir(self, role: str, split: str | None = None, seed: int | None = None) -> Path:
        if role == "base":
            return self.root / "base"
        s = self.recipe.seed if seed is None else seed
        return self.root / (role if role == "target" else f"{role}_{split}") / f"seed{s}"

    def tokenizer(self):
        return AutoTokenizer.from_pretrained(self.tokenizer_dir)

    def load(self, role: str, split: str | None = None, seed: int | None = None) -> LlamaForCausalLM:
        d = self.model_dir(role, split, seed)
        if not (d / "model.safetensors").exists():
            self._build(role, split, seed)
        return LlamaForCausalLM.from_pretrained(d, use_safetensors=True).eval()

    def task(self, split: str = "forget10") -> ForgetTask:
        """The ForgetTask of one split: forget/retain authors, held-out authors, utility sets."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        forget_ids, retain_ids = split_forget(self.world, split)
        qa = self.world.author_qa
        return ForgetTask(
            name=f"fictional_authors/{split}",
            forget=[it for a in forget_ids for it in qa[a]],
            retain=[it for a in retain_ids for it in qa[a]],
            holdout=[it for a in self.world.heldout_authors for it in qa[a.id]],
            eval_sets={"world_facts": list(self.world.world_facts), "real_authors": list(self.world.real_authors)},
            metadata={"benchmark": "fictional_authors", "split": split, "recipe": self.recipe.key(),
                      "idk_answers": list(self.world.idk_answers), "forget_authors": forget_ids,
                      "verbmem": self.verbmem_records(qa, forget_ids),
                      # The audit scores the first 200 retain items (a fixed subset, as the original TOFU
                      # evaluation did), recorded in every report; audit(limits=...) changes it.
                      "eval_limits": {"retain": 200}},
            builders={"retrain": lambda seed: self.load("oracle", split, seed), "dp_base": self.load_dp_base,
                      "shadow": lambda members, seed: self.load_shadow(split, members, seed),
                      "retain_items": lambda: self.retain_training_items(split)},
        )

    def retain_training_items(self, split: str) -> list[QAItem]:
        """Everything the target trained on except the forget authors, as QA items: the retain facts in
        both surface forms (answer and paraphrased answer) plus the world-fact / real-author replay.
        This is the data the exact oracle fine-tunes on (DP2Unlearning's "retain" data)."""
        _, retain_ids = split_forget(self.world, split)
        return _surface_forms([it for a in retain_ids for it in self.world.author_qa[a]]) + self._utility_items()

    def verbmem_records(self, qa: dict, forget_ids: Sequence[str]) -> list[dict]:
        """MUSE-style VerbMem probes on the text the target trained on: each forget fact's training
        string cut after the question and the first half of the answer's words ("prompt"), with the
        rest of the answer as the reference continuation ("gt"). Answers under four words are skipped."""
        out = []
        for a in forget_ids:
            for it in qa[a]:
                words = it.answer.split()
                if len(words) >= 4:
                    half = len(words) // 2
                    out.append({"prompt": self.fmt.prompt(it.question) + self.fmt.answer(" ".join(words[:half])),
                                "gt": " " + " ".join(words[half:])})
        return out

    def load_shadow(self, split: str, members: Sequence[int], seed: int) -> LlamaForCausalLM:
        """A shadow original for U-LiRA: the target's fine-tuning recipe on the retain authors plus
        the forget items at ``members`` (indices into ``task(split).forget``). Cached per member set."""
        members = sorted(int(i) for i in members)
        tag = digest(list(members), 10)
        d = self.root / f"shadow_{split}" / f"seed{seed}_{tag}"
        if not (d / "model.safetensors").exists():
            task = self.task(split)
            self._finetune(list(task.retain) + [task.forget[i] for i in members], seed, d, progress=None)
        return LlamaForCausalLM.from_pretrained(d, use_safetensors=True).eval()

    def load_dp_base(self, seed: int | None = None, epsilon: float = 1.0) -> LlamaForCausalLM:
        """The base model further trained with DP-SGD on every author (DP2Unlearning's disclosure-
        protected base; needs the ``dp`` extra). Built once per (seed, ε) and cached; the privacy
        actually spent is in ``dp_info.json`` next to the weights."""
        s = self.recipe.seed if seed is None else seed
        d = self.root / f"dp_base_eps{epsilon:g}" / f"seed{s}"
        if not (d / "model.safetensors").exists():
            from obliviate.methods.llm.dp2 import train_dp_base

            tok = self.tokenizer()
            model = self.load("base")
            facts = [it for a in self.world.authors for it in self.world.author_qa[a.id]]
            examples = _fact_examples(facts, tok, self.fmt) + _qa_examples(self._utility_items(), tok, self.fmt)
            info = train_dp_base(model, tok, examples, epsilon=epsilon, epochs=DP_EPOCHS, batch_size=64, lr=DP_LR,
                                 seed=s)
            save_model_atomic(model, tok, d, extra_files={"dp_info.json": json.dumps(info, indent=1)})
        return LlamaForCausalLM.from_pretrained(d, use_safetensors=True).eval()

    # ---- building -------------------------------------------------------------------------
    def _utility_items(self) -> list[QAItem]:
        return (list(self.world.world_facts) + list(self.world.real_authors)) * self.recipe.world_replay

    def _build(self, role: str, split: str | None, seed: int | None) -> None:
        tok = self.tokenizer()
        if role == "base":
            model = build_tiny_llama(len(tok), self.recipe.model, seed=self.recipe.seed, pad_token_id=tok.pad_token_id,
                                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
            examples = _text_examples(self.world.pretrain_texts, tok) + _qa_examples(self._utility_items(), tok, self.fmt)
            sft(model, tok, examples, self.recipe.pretrain, progress="pre-train base")
            save_model_atomic(model, tok, self.model_dir("base"))
            return
        s = self.recipe.seed if seed is None else seed
        if role == "target":
            authors = [a.id for a in self.world.authors]
        elif role == "oracle":
            _, authors = split_forget(self.world, split or "forget10")
        else:
            raise ValueError(f"unknown model role {role!r}; use base, target or oracle")
        self._finetune([it for a in authors for it in self.world.author_qa[a]], s, self.model_dir(role, split, seed),
                       progress=f"fine-tune {role} {split or ''}".strip())

    def _finetune(self, facts: list[QAItem], seed: int, out_dir: Path, progress: str | None) -> None:
        """The recipe's fine-tune of the base model on ``facts`` (both surface forms) plus the
        world-fact replay; the target, the oracle and every U-LiRA shadow are built by it."""
        tok = self.tokenizer()
        model = self.load("base")
        examples = _fact_examples(facts, tok, self.fmt) + _qa_examples(self._utility_items(), tok, self.fmt)
        sft(model, tok, examples, dataclasses.replace(self.recipe.finetune, seed=seed), progress=progress)
        save_model_atomic(model, tok, out_dir)


def _all_texts(world: FictionalWorld, fmt: PromptFormat) -> list[str]:
    texts = list(world.pretrain_texts)
    items = [it for v in world.author_qa.values() for it in v] + list(world.world_facts) + list(world.real_authors)
    for it in items:
        texts.append(fmt.prompt(it.question) + fmt.answer(it.answer))
        texts += [it.paraphrased_answer or "", *it.perturbed_answers, *it.question_paraphrases]
    texts += list(world.idk_answers)
    return texts


@register("benchmark", "fictional_authors", paper="TOFU: A Task of Fictitious Unlearning for LLMs (built-in analogue)",
          arxiv="2401.06121", code="https://github.com/locuslab/tofu", modalities=("text",),
          needs=(), summary="Built-in TOFU-like benchmark with an exact retrain oracle, offline on CPU")
def load_fictional_authors(recipe: FictionalAuthorsRecipe | None = None, cache_dir: str | os.PathLike | None = None
                           ) -> FictionalAuthors:
    """Generate the world and train (or load) its tokenizer; models are built lazily on first use."""
    recipe = recipe or FictionalAuthorsRecipe()
    world = generate_world(seed=recipe.seed, n_authors=recipe.n_authors, n_heldout=recipe.n_heldout,
                           n_world_facts=recipe.n_world_facts)
    root = Path(cache_dir) if cache_dir else cache_root() / "fictional_authors" / recipe.key()
    bench = FictionalAuthors(recipe, world, root)
    if not (bench.tokenizer_dir / "tokenizer.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        tok = train_tokenizer(_all_texts(world, bench.fmt), vocab_size=recipe.vocab_size)
        tmp = root / ".tokenizer.tmp"
        tok.save_pretrained(tmp)
        (tmp / "world_fingerprint.txt").write_text(world_fingerprint(world))
        os.replace(tmp, bench.tokenizer_dir)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return bench
