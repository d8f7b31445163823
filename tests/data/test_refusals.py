"""The refusal pool used for IdK, IdkDPO, FLAT and GRIN templates on tasks without their own refusals."""

from obliviate.data.refusals import REFUSALS
from obliviate.data.formatting import PromptFormat
from obliviate.data.task import QAItem
from obliviate.train.loop import DEFAULT_REFUSALS, encode_items


def test_about_a_hundred_distinct_refusals():
    assert len(REFUSALS) == 100  # TOFU / OpenUnlearning draw from about 100 IdK phrasings
    normalised = {r.lower().strip().rstrip(".!") for r in REFUSALS}
    assert len(normalised) == len(REFUSALS), "refusals repeat (case and final punctuation ignored)"
    assert all(r == r.strip() and r[0].isupper() and r[-1] in ".!" for r in REFUSALS)
    assert all(len(r.split()) <= 14 for r in REFUSALS)  # short answers, as IdK targets are


def test_training_draws_from_the_whole_pool(tiny_tokenizer):
    assert DEFAULT_REFUSALS == REFUSALS
    items = [QAItem(question=f"Who is person {i}?", answer="Someone.") for i in range(400)]
    enc = encode_items(items, tiny_tokenizer, PromptFormat(), 64, answer="alt", seed=0)
    answers = {tuple(e.input_ids[e.n_prompt:]) for e in enc}
    assert len(answers) > 80  # 400 draws from 100 refusals cover most of them (expected ~98)
