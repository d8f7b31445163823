"""Shared fixtures: a tiny tokenizer, a tiny Llama and a small synthetic QA task (seconds to build)."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from obliviate.data.task import ForgetTask, QAItem
from obliviate.models.tiny import TinyLlamaConfig, build_tiny_llama, train_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(2)

TOWNS = ["Arlen", "Bexley", "Corin", "Dunmore", "Elsworth", "Fallow", "Gresham"]


def _items(n: int, offset: int = 0) -> list[QAItem]:
    out = []
    for i in range(offset, offset + n):
        town = TOWNS[i % len(TOWNS)]
        wrong = [TOWNS[(i + k) % len(TOWNS)] for k in (1, 2, 3)]
        out.append(QAItem(
            question=f"Where was writer {i} born?", answer=f"Writer {i} was born in {town}.", id=f"w{i}",
            group=f"w{i}", paraphrased_answer=f"{town} is where writer {i} was born.",
            perturbed_answers=tuple(f"Writer {i} was born in {w}." for w in wrong),
            question_paraphrases=(f"What is the birthplace of writer {i}?",),
        ))
    return out


@pytest.fixture(scope="session")
def tiny_items() -> list[QAItem]:
    return _items(40)


@pytest.fixture(scope="session")
def tiny_task(tiny_items) -> ForgetTask:
    return ForgetTask("tiny", forget=tiny_items[:8], retain=tiny_items[8:32], holdout=_items(8, offset=100),
                      eval_sets={"world_facts": tiny_items[32:40]})


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_items):
    texts = [f"Question: {it.question}\nAnswer: {it.answer} {it.paraphrased_answer} {' '.join(it.perturbed_answers)}"
             for it in tiny_items + _items(8, offset=100)]
    return train_tokenizer(texts + ["I don't know.", "I'm not sure about that."], vocab_size=300)


@pytest.fixture(scope="session")
def _tiny_model_master(tiny_tokenizer):
    tok = tiny_tokenizer
    return build_tiny_llama(len(tok), TinyLlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                      intermediate_size=64), seed=0, pad_token_id=tok.pad_token_id,
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)


@pytest.fixture
def tiny_model(_tiny_model_master):
    """A fresh copy per test (tests may train it)."""
    return copy.deepcopy(_tiny_model_master)
# A session-wide cache of the small built-in benchmark, shared by every slow test (and the README test).
@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory):
    path = os.environ.get("OBLIVIATE_TEST_CACHE") or str(tmp_path_factory.getbasetemp() / "obliviate-cache")
    return path


@pytest.fixture(scope="session")
def quick_bench(bench_cache):
    from obliviate.benchmarks.fictional_authors import load_fictional_authors
    from obliviate.demo import quick_recipe

    old = os.environ.get("OBLIVIATE_CACHE")
    os.environ["OBLIVIATE_CACHE"] = bench_cache
    try:
        yield load_fictional_authors(quick_recipe())
    finally:
        if old is None:
            os.environ.pop("OBLIVIATE_CACHE", None)
        else:
            os.environ["OBLIVIATE_CACHE"] = old
