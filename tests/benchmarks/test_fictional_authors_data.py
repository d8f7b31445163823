"""The fictional-authors generator: deterministic, well-formed, and split like TOFU."""

from __future__ import annotations

import pytest

from obliviate.benchmarks.fictional_authors_data import (
    ATTRIBUTES,
    FictionalWorld,
    generate_world,
    split_forget,
    world_fingerprint,
)
from obliviate.data.task import QAItem


@pytest.fixture(scope="module")
def world() -> FictionalWorld:
    return generate_world(seed=0)


def _all_items(w: FictionalWorld) -> list[QAItem]:
    return [it for items in w.author_qa.values() for it in items] + list(w.world_facts) + list(w.real_authors)


def test_same_seed_same_world(world):
    again = generate_world(seed=0)
    assert again == world
    assert world_fingerprint(again) == world_fingerprint(world)


def test_different_seed_different_people(world):
    other = generate_world(seed=1)
    assert world_fingerprint(other) != world_fingerprint(world)
    assert [a.name for a in other.authors] != [a.name for a in world.authors]


def test_first_authors_do_not_depend_on_how_many(world):
    small = generate_world(seed=0, n_authors=5)
    assert small.authors == world.authors[:5]


def test_counts(world):
    assert len(world.authors) == 50
    assert len(world.heldout_authors) == 10
    assert len(world.world_facts) == 120
    assert len(world.real_authors) >= 20
    assert len(world.idk_answers) >= 20
    assert len(set(world.idk_answers)) == len(world.idk_answers)
    assert set(world.author_qa) == {a.id for a in (*world.authors, *world.heldout_authors)}
    assert isinstance(world.world_facts, tuple) and isinstance(world.pretrain_texts, tuple)


def test_every_author_has_every_attribute_and_one_item_each(world):
    assert len(ATTRIBUTES) >= 10
    for a in (*world.authors, *world.heldout_authors):
        assert set(a.attributes) == set(ATTRIBUTES)
        items = world.author_qa[a.id]
        assert [it.id for it in items] == [f"{a.id}/{attr}" for attr in ATTRIBUTES]
        for it, attr in zip(items, ATTRIBUTES):
            assert it.group == a.id
            assert a.name in it.question and a.name in it.answer
            assert a.attributes[attr] in it.answer and a.attributes[attr] in it.paraphrased_answer
            assert it.paraphrased_answer != it.answer
            assert len(it.question_paraphrases) >= 2 and it.question not in it.question_paraphrases
            assert it.alt_answer in world.idk_answers


def test_perturbed_answers_are_wrong_and_distinct(world):
    for it in _all_items(world):
        assert len(it.perturbed_answers) >= 3, it.id
        assert it.answer not in it.perturbed_answers, it.id
        assert len(set(it.perturbed_answers)) == len(it.perturbed_answers), it.id
    # Same template, wrong value: the true value never appears in an author's perturbed answer.
    for a in world.authors:
        for it, attr in zip(world.author_qa[a.id], ATTRIBUTES):
            value = a.attributes[attr]
            for p in it.perturbed_answers:
                assert p != it.answer and value not in p.replace(a.name, ""), (it.id, p)


def test_names_unique_and_heldout_disjoint(world):
    people = (*world.authors, *world.heldout_authors)
    names = [a.name for a in people] + [a.attributes["pen_name"] for a in people]
    assert len(set(names)) == len(names)
    assert {a.id for a in world.authors}.isdisjoint(a.id for a in world.heldout_authors)
    books = [a.attributes[k] for a in people for k in ("first_book", "second_book")]
    assert len(set(books)) == len(books)


def test_answers_are_short(world):
    for it in _all_items(world):
        for text in (it.answer, it.paraphrased_answer, *it.perturbed_answers):
            assert len(text.split()) < 20, text


def test_item_ids_unique(world):
    ids = [it.id for it in _all_items(world)]
    assert len(set(ids)) == len(ids)


def test_pretrain_texts_cover_world_and_real_author_facts(world):
    texts = set(world.pretrain_texts)
    for it in (*world.world_facts, *world.real_authors):
        assert it.answer in texts and f"{it.question} {it.answer}" in texts
    # Fictional authors are learned only in fine-tuning, never in the base model's corpus.
    assert not any(world.authors[0].name in t for t in world.pretrain_texts)


def test_known_world_fact():
    w = generate_world(seed=0, n_world_facts=179)
    fact = next(it for it in w.world_facts if it.id == "world/add_7_5")
    assert fact.answer == "7 plus 5 is 12."
    assert "7 plus 5 is 12." not in fact.perturbed_answers


@pytest.mark.parametrize("split, n_forget", [("forget01", 1), ("forget05", 3), ("forget10", 5)])
def test_split_sizes(world, split, n_forget):
    forget, retain = split_forget(world, split)
    assert len(forget) == n_forget
    assert set(forget).isdisjoint(retain)
    assert sorted(forget + retain) == sorted(a.id for a in world.authors)
    assert forget == [a.id for a in world.authors[-n_forget:]]  # the last authors, like TOFU


def test_split_errors_speak(world):
    with pytest.raises(ValueError, match="forget01, forget05, forget10"):
        split_forget(world, "forget50")
    with pytest.raises(ValueError, match="n_authors"):
        split_forget(generate_world(n_authors=1, n_heldout=0), "forget01")
    with pytest.raises(ValueError, match="n_world_facts"):
        generate_world(n_world_facts=10_000)
