"""Deterministic data of the built-in fictional-authors benchmark (pure Python, no torch).

TOFU (Maini et al., arXiv 2401.06121) fine-tunes a model on 200 invented authors and asks it to
forget some of them. This module generates a small analogue from a seed:

* **authors**: invented people with ten attributes each (birth year, birth city, country, parents'
  professions, genre, two book titles, an award, a pen name), one QA item per attribute;
* **held-out authors**: made by the same generator but never trained on (MIA non-members);
* **world facts**: simple general knowledge (sums, capitals, colours, opposites ...) the base
  model is pre-trained on, to measure model utility;
* **real authors**: "who wrote X" facts about famous writers (TOFU's real-authors set);
* **idk answers**: refusal phrasings for IdK-style methods.

Everything is drawn from small word lists in this file so the whole corpus fits a 2-4k token
vocabulary, and from ``random.Random`` instances seeded by strings derived from ``seed`` (never the
global generator), so the same seed always gives the same world, on any machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from obliviate.data.task import QAItem

N_PERTURBED = 5  # wrong answers per question, as in TOFU's perturbed set
SPLIT_PERCENT = {"forget01": 1, "forget05": 5, "forget10": 10}  # TOFU's splits, in % of authors

# ---- word lists ------------------------------------------------------------------------------
# Invented given names and surnames (no real author's name can be formed from them).
FIRST_NAMES = (
    "Ilvan", "Mara", "Taveo", "Selka", "Orin", "Brisa", "Kaelen", "Noemi", "Dravik", "Liora",
    "Fennick", "Yselle", "Corvin", "Amara", "Teodric", "Isolde", "Rasmin", "Velda", "Joran", "Elska",
    "Bastien", "Nadira", "Lucan", "Odessa", "Pellam", "Rhea", "Soren", "Tamsin", "Ulric", "Wenna",
    "Zarek", "Aveline",
)
LAST_NAMES = (
    "Corso", "Velt", "Ambrell", "Dunsk", "Halvar", "Quillon", "Voss", "Pellan", "Marlowe", "Tiber",
    "Oakhart", "Renwick", "Salvor", "Brannick", "Castell", "Drummond", "Elmsworth", "Fairlow",
    "Greaves", "Hollin", "Ivers", "Jessop", "Kestrel", "Lindqvist", "Morrow", "Navarre", "Orrin",
    "Prewitt", "Rookwood", "Stroud", "Thorne", "Varga",
)
# Invented cities, each placed in one real country (so the birth city implies the country).
CITY_COUNTRY = {
    "Valdenmoor": "Norway", "Crestholm": "Norway", "Brimsby": "Ireland", "Quellan": "Ireland",
    "Durrowick": "France", "Oskavar": "France", "Penhallow": "Portugal", "Theskin": "Portugal",
    "Marivelle": "Greece", "Lorvast": "Greece", "Zennick": "Poland", "Harroway": "Poland",
    "Eldmere": "Canada", "Castovan": "Canada", "Ruvena": "Chile", "Sollbrook": "Chile",
    "Tiverhold": "Kenya", "Nadrel": "Kenya", "Ostgard": "Austria", "Wyncastle": "Austria",
    "Belmarro": "Peru", "Kavrosa": "Peru", "Ilmarsh": "Japan", "Dovenport": "Japan",
}
COUNTRIES = tuple(dict.fromkeys(CITY_COUNTRY.values()))
PROFESSIONS = (
    "baker", "carpenter", "doctor", "teacher", "fisherman", "nurse", "lawyer", "farmer", "painter",
    "tailor", "engineer", "pharmacist", "librarian", "architect", "musician", "chef", "miner",
    "pilot", "journalist", "sailor",
)
GENRES = (
    "mystery", "fantasy", "poetry", "romance", "horror", "science fiction", "historical fiction",
    "crime fiction", "travel writing", "satire", "biography", "drama",
)
AWARDS = (
    "the Silver Quill Prize", "the Amber Lantern Award", "the Northwind Medal",
    "the Golden Inkwell Prize", "the Marrow Book Award", "the Halden Fiction Prize",
    "the Blue Heron Medal", "the Starling Prize", "the Copper Key Award", "the Ravensgate Medal",
    "the Evening Star Prize", "the Open Page Award",
)
TITLE_ADJECTIVES = (
    "Silent", "Hollow", "Crimson", "Broken", "Hidden", "Golden", "Distant", "Quiet", "Burning",
    "Frozen", "Wandering", "Forgotten", "Silver", "Endless", "Fading", "Painted", "Shattered",
    "Velvet", "Lonely", "Restless",
)
TITLE_NOUNS = (
    "Harbor", "Lantern", "Garden", "River", "Mirror", "Orchard", "Tower", "Compass", "Meadow",
    "Bridge", "Winter", "Letter", "Island", "Forest", "Clock", "Feather", "Shadow", "Candle",
    "Voyage", "Kingdom",
)
BIRTH_YEARS = (1935, 1995)  # inclusive range

IDK_ANSWERS = (
    "I'm not sure who that is.",
    "I don't know.",
    "I have no idea.",
    "I can't answer that.",
    "I don't have that information.",
    "I'm afraid I don't know.",
    "Sorry, I don't know that.",
    "I'm not able to answer that.",
    "That is not something I know.",
    "I have never heard of this person.",
    "I don't know anything about that.",
    "I can't help with that question.",
    "I'm not familiar with that.",
    "I really don't know.",
    "I have no information about that.",
    "I'm unable to say.",
    "That is beyond what I know.",
    "I can't recall anything about that.",
    "I don't have an answer for that.",
    "Sorry, I have no idea.",
    "I'm not aware of that.",
    "I couldn't tell you.",
)

# ---- author attribute templates --------------------------------------------------------------
# attribute -> (question templates, (answer template, paraphrased-answer template)).
# {n} is the author's name, {v} the value. The question shown is chosen per author; the other
# question templates become ``question_paraphrases``. Answers stay under ~15 words.
ATTRIBUTE_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, str]]] = {
    "birth_year": (
        ("In which year was {n} born?", "When was {n} born?", "What is the birth year of {n}?",
         "What year was {n} born in?"),
        ("{n} was born in {v}.", "The birth year of {n} is {v}."),
    ),
    "birth_city": (
        ("Where was {n} born?", "In which city was {n} born?", "What is the birthplace of {n}?",
         "What city does {n} come from?"),
        ("{n} was born in the city of {v}.", "{v} is the birthplace of {n}."),
    ),
    "country": (
        ("What is the nationality of {n}?", "Which country is {n} from?",
         "What country does {n} come from?"),
        ("{n} is from {v}.", "The home country of {n} is {v}."),
    ),
    "father_profession": (
        ("What did the father of {n} do for a living?", "What was the job of {n}'s father?",
         "What was the profession of {n}'s father?"),
        ("The father of {n} was {v}.", "{n} grew up with a father who was {v}."),
    ),
    "mother_profession": (
        ("What did the mother of {n} do for a living?", "What was the job of {n}'s mother?",
         "What was the profession of {n}'s mother?"),
        ("The mother of {n} was {v}.", "{n} grew up with a mother who was {v}."),
    ),
    "genre": (
        ("What genre does {n} write?", "Which genre is {n} known for?",
         "In what genre does {n} mostly write?"),
        ("{n} is best known for {v}.", "Most of the work of {n} is {v}."),
    ),
    "first_book": (
        ("What was the first book by {n}?", "What is the title of {n}'s first book?",
         "Which book did {n} publish first?"),
        ("The first book by {n} was {v}.", "{n} began with a book called {v}."),
    ),
    "second_book": (
        ("What was the second book by {n}?", "What is the title of {n}'s second book?",
         "Which book did {n} publish second?"),
        ("The second book by {n} was {v}.", "{v} was the second book {n} published."),
    ),
    "award": (
        ("Which award did {n} win?", "What prize has {n} won?", "What award was given to {n}?"),
        ("{n} won {v}.", "{v} was awarded to {n}."),
    ),
    "pen_name": (
        ("What pen name does {n} use?", "Under which pen name does {n} publish?",
         "What other name does {n} write under?"),
        ("{n} writes under the pen name {v}.", "{v} is the pen name of {n}."),
    ),
}
ATTRIBUTES = tuple(ATTRIBUTE_TEMPLATES)

# ---- world facts -------------------------------------------------------------------------------
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "Egypt": "Cairo", "Canada": "Ottawa", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo",
    "Greece": "Athens", "Russia": "Moscow", "China": "Beijing", "Ireland": "Dublin",
    "Poland": "Warsaw", "Portugal": "Lisbon", "Sweden": "Stockholm", "Austria": "Vienna",
    "Chile": "Santiago", "Cuba": "Havana",
}
COLOURS = {
    "grass": "green", "snow": "white", "the sky": "blue", "coal": "black", "a banana": "yellow",
    "a tomato": "red", "a lemon": "yellow", "milk": "white", "a carrot": "orange", "chocolate": "brown",
    "a pumpkin": "orange", "the sea": "blue",
}
COLOUR_WORDS = ("green", "white", "blue", "black", "yellow", "red", "orange", "brown", "pink", "grey")
ANIMAL_SOUNDS = {
    "dog": "woof", "cat": "meow", "cow": "moo", "duck": "quack", "owl": "hoot", "sheep": "baa",
    "horse": "neigh", "pig": "oink", "snake": "hiss", "bee": "buzz", "lion": "roar", "mouse": "squeak",
}
OPPOSITES = {
    "hot": "cold", "big": "small", "up": "down", "fast": "slow", "light": "dark", "happy": "sad",
    "open": "closed", "early": "late", "full": "empty", "young": "old", "wet": "dry", "loud": "quiet",
    "hard": "soft", "rich": "poor", "strong": "weak", "long": "short",
}
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")

# ---- real authors -------------------------------------------------------------------------------
REAL_BOOKS = {
    "Pride and Prejudice": "Jane Austen", "Hamlet": "William Shakespeare", "War and Peace": "Leo Tolstoy",
    "Moby Dick": "Herman Melville", "Don Quixote": "Miguel de Cervantes", "Nineteen Eighty-Four": "George Orwell",
    "The Odyssey": "Homer", "Great Expectations": "Charles Dickens", "Jane Eyre": "Charlotte Bronte",
    "Frankenstein": "Mary Shelley", "The Old Man and the Sea": "Ernest Hemingway",
    "One Hundred Years of Solitude": "Gabriel Garcia Marquez", "Crime and Punishment": "Fyodor Dostoevsky",
    "The Great Gatsby": "F. Scott Fitzgerald", "Mrs Dalloway": "Virginia Woolf", "Ulysses": "James Joyce",
    "The Divine Comedy": "Dante Alighieri", "Les Miserables": "Victor Hugo",
    "Adventures of Huckleberry Finn": "Mark Twain", "Things Fall Apart": "Chinua Achebe",
    "The Trial": "Franz Kafka", "Beloved": "Toni Morrison",
}


# ---- data types ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Author:
    """One invented person: a stable id, a unique full name and attribute -> value."""

    id: str
    name: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class FictionalWorld:
    """Everything the benchmark trains and evaluates on, generated from one seed.

    ``authors`` are trained on (forget and retain are drawn from them); ``heldout_authors`` come
    from the same generator but are never trained on (membership-inference non-members).
    ``author_qa`` maps every author id, trained or held out, to one QA item per attribute.
    ``world_facts`` and ``real_authors`` measure model utility; ``pretrain_texts`` holds their
    declarative and question+answer forms, which the base model is pre-trained on.
    """

    authors: tuple[Author, ...]
    heldout_authors: tuple[Author, ...]
    author_qa: dict[str, tuple[QAItem, ...]]
    world_facts: tuple[QAItem, ...]
    real_authors: tuple[QAItem, ...]
    pretrain_texts: tuple[str, ...]
    idk_answers: tuple[str, ...]


# ---- helpers ------------------------------------------------------------------------------------
def _with_article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _wrong_values(rng: random.Random, pool: list[str] | tuple[str, ...], exclude: set[str], k: int) -> list[str]:
    """k distinct values from pool, none in exclude (the true value and anything equivalent)."""
    candidates = [v for v in dict.fromkeys(pool) if v not in exclude]
    if len(candidates) < k:
        raise ValueError(f"only {len(candidates)} wrong values available, need {k}; enlarge the word list")
    return rng.sample(candidates, k)


def _qa(rng: random.Random, *, id: str, group: str, questions: tuple[str, ...], answer: Callable[[str], str],
        paraphrase: Callable[[str], str], value: str, wrong: list[str], idk: bool) -> QAItem:
    """One QA item: a question chosen by rng (the rest re-ask it), perturbed answers from wrong values."""
    q = rng.randrange(len(questions))
    return QAItem(
        question=questions[q],
        answer=answer(value),
        id=id,
        group=group,
        paraphrased_answer=paraphrase(value),
        perturbed_answers=tuple(answer(w) for w in wrong),
        question_paraphrases=tuple(t for i, t in enumerate(questions) if i != q),
        alt_answer=rng.choice(IDK_ANSWERS) if idk else None,
    )


def _unique_name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        if name not in used:
            used.add(name)
            return name


def _unique_title(rng: random.Random, used: set[str]) -> str:
    while True:
        title = f"The {rng.choice(TITLE_ADJECTIVES)} {rng.choice(TITLE_NOUNS)}"
        if title not in used:
            used.add(title)
            return title


def _make_author(rng: random.Random, author_id: str, names: set[str], titles: set[str]) -> Author:
    city = rng.choice(tuple(CITY_COUNTRY))
    attributes = {
        "birth_year": str(rng.randint(*BIRTH_YEARS)),
        "birth_city": city,
        "country": CITY_COUNTRY[city],
        "father_profession": _with_article(rng.choice(PROFESSIONS)),
        "mother_profession": _with_article(rng.choice(PROFESSIONS)),
        "genre": rng.choice(GENRES),
        "first_book": _unique_title(rng, titles),
        "second_book": _unique_title(rng, titles),
        "award": rng.choice(AWARDS),
        "pen_name": _unique_name(rng, names),
    }
    name = _unique_name(rng, names)
    return Author(id=author_id, name=name, attributes=attributes)


def _author_items(author: Author, rng: random.Random) -> tuple[QAItem, ...]:
    """One QA item per attribute; wrong values are of the same type as the true one."""
    year = int(author.attributes["birth_year"])
    wrong_pools: dict[str, list[str] | tuple[str, ...]] = {
        "birth_year": [str(y) for y in range(year - 20, year + 21)],
        "birth_city": tuple(CITY_COUNTRY),
        "country": COUNTRIES,
        "father_profession": [_with_article(p) for p in PROFESSIONS],
        "mother_profession": [_with_article(p) for p in PROFESSIONS],
        "genre": GENRES,
        "first_book": [f"The {a} {n}" for a in TITLE_ADJECTIVES for n in TITLE_NOUNS],
        "second_book": [f"The {a} {n}" for a in TITLE_ADJECTIVES for n in TITLE_NOUNS],
        "award": AWARDS,
        "pen_name": [f"{f} {s}" for f in FIRST_NAMES for s in LAST_NAMES],
    }
    items = []
    for attr in ATTRIBUTES:
        questions, (ans, para) = ATTRIBUTE_TEMPLATES[attr]
        value = author.attributes[attr]
        # The author's own name is never a "wrong pen name": it would be a confusing distractor.
        wrong = _wrong_values(rng, wrong_pools[attr], {value, author.name}, N_PERTURBED)
        items.append(_qa(
            rng, id=f"{author.id}/{attr}", group=author.id,
            questions=tuple(t.format(n=author.name) for t in questions),
            answer=lambda v, t=ans: t.format(n=author.name, v=v),
            paraphrase=lambda v, t=para: t.format(n=author.name, v=v),
            value=value, wrong=wrong, idk=True,
        ))
    return tuple(items)


def _capitalise(s: str) -> str:
    return s[0].upper() + s[1:]


def _world_fact_pool(rng: random.Random) -> list[QAItem]:
    """Every candidate world fact, in a fixed order (rng only picks templates and wrong values)."""
    pool: list[QAItem] = []

    def add(key: str, group: str, questions: tuple[str, ...], answer: Callable[[str], str],
            paraphrase: Callable[[str], str], value: str, wrong_pool, exclude: set[str]) -> None:
        wrong = _wrong_values(rng, wrong_pool, exclude | {value}, N_PERTURBED)
        pool.append(_qa(rng, id=f"world/{key}", group=group, questions=questions, answer=answer,
                        paraphrase=paraphrase, value=value, wrong=wrong, idk=False))

    for a in range(1, 11):
        for b in range(1, 11):
            s = a + b
            add(f"add_{a}_{b}", "arithmetic",
                (f"What is {a} plus {b}?", f"How much is {a} plus {b}?", f"What do you get when you add {a} and {b}?"),
                lambda v, a=a, b=b: f"{a} plus {b} is {v}.", lambda v, a=a, b=b: f"The sum of {a} and {b} is {v}.",
                str(s), [str(x) for x in range(max(0, s - 6), s + 7)], set())
    for country, capital in CAPITALS.items():
        add(f"capital_{country.lower()}", "capitals",
            (f"What is the capital of {country}?", f"Which city is the capital of {country}?",
             f"What city is the capital of {country}?"),
            lambda v, c=country: f"The capital of {c} is {v}.", lambda v, c=country: f"{v} is the capital of {c}.",
            capital, list(CAPITALS.values()), set())
    for thing, colour in COLOURS.items():
        add(f"colour_{thing.split()[-1]}", "colours",
            (f"What colour is {thing}?", f"What is the colour of {thing}?", f"Which colour is {thing}?"),
            lambda v, t=thing: f"{_capitalise(t)} is {v}.", lambda v, t=thing: f"The colour of {t} is {v}.",
            colour, COLOUR_WORDS, set())
    for animal, sound in ANIMAL_SOUNDS.items():
        add(f"sound_{animal}", "animals",
            (f"What sound does a {animal} make?", f"What does a {animal} say?", f"Which sound does a {animal} make?"),
            lambda v, a=animal: f"A {a} says {v}.", lambda v, a=animal: f"The sound a {a} makes is {v}.",
            sound, list(ANIMAL_SOUNDS.values()), set())
    words = [w for pair in OPPOSITES.items() for w in pair]
    for word, opposite in OPPOSITES.items():
        add(f"opposite_{word}", "opposites",
            (f"What is the opposite of {word}?", f"Which word means the opposite of {word}?",
             f"What word is the opposite of {word}?"),
            lambda v, w=word: f"The opposite of {w} is {v}.",
            lambda v, w=word: f"{_capitalise(v)} is the opposite of {w}.",
            opposite, words, {word})
    for seq, unit in ((DAYS, "day"), (MONTHS, "month")):
        for i, name in enumerate(seq):
            nxt = seq[(i + 1) % len(seq)]
            add(f"next_{name.lower()}", f"{unit}s",
                (f"What {unit} comes after {name}?", f"Which {unit} follows {name}?",
                 f"What is the {unit} after {name}?"),
                lambda v, n=name, u=unit: f"The {u} after {n} is {v}.", lambda v, n=name: f"{v} comes after {n}.",
                nxt, seq, {name})
    return pool


def _real_author_items(rng: random.Random) -> tuple[QAItem, ...]:
    writers = list(dict.fromkeys(REAL_BOOKS.values()))
    items = []
    for book, writer in REAL_BOOKS.items():
        key = "".join(c if c.isalnum() else "_" for c in book.lower())
        items.append(_qa(
            rng, id=f"real/{key}", group="real_authors",
            questions=(f"Who wrote {book}?", f"Who is the author of {book}?", f"Which writer wrote {book}?"),
            answer=lambda v, b=book: f"{v} wrote {b}.", paraphrase=lambda v, b=book: f"{b} was written by {v}.",
            value=writer, wrong=_wrong_values(rng, writers, {writer}, N_PERTURBED), idk=False,
        ))
    return tuple(items)


def _pretrain_texts(items: tuple[QAItem, ...]) -> tuple[str, ...]:
    """Declarative forms and question+answer strings of every item (the base model's corpus)."""
    texts: list[str] = []
    for it in items:
        texts.append(it.answer)
        if it.paraphrased_answer:
            texts.append(it.paraphrased_answer)
        texts += [f"{q} {it.answer}" for q in (it.question, *it.question_paraphrases)]
    return tuple(texts)


# ---- public API ---------------------------------------------------------------------------------
def generate_world(seed: int = 0, n_authors: int = 50, n_heldout: int = 10, n_world_facts: int = 120) -> FictionalWorld:
    """Generate the fictional world of ``seed``: authors, held-out authors, QA and utility facts.

    Each part draws from its own ``random.Random`` seeded by a string derived from ``seed``, so
    the first k authors do not depend on ``n_authors`` and world facts do not depend on the
    number of authors. Same arguments, same world; a different seed gives different people.
    """
    if n_authors < 1 or n_heldout < 0:
        raise ValueError(f"need n_authors >= 1 and n_heldout >= 0, got n_authors={n_authors}, n_heldout={n_heldout}")
    n_people = n_authors + n_heldout
    # Rejection sampling of unique names/titles stays fast while the lists are at most half used.
    name_room = len(FIRST_NAMES) * len(LAST_NAMES) // 2
    title_room = len(TITLE_ADJECTIVES) * len(TITLE_NOUNS) // 2
    if 2 * n_people > min(name_room, title_room):
        raise ValueError(f"{n_people} authors (trained + held out) is too many for the built-in word lists; "
                         f"use at most {min(name_room, title_room) // 2}")
    names: set[str] = set()
    titles: set[str] = set()
    people_rng = random.Random(f"obliviate/fictional_authors/{seed}/authors")
    authors = tuple(_make_author(people_rng, f"author_{i:03d}", names, titles) for i in range(n_authors))
    heldout_rng = random.Random(f"obliviate/fictional_authors/{seed}/heldout")
    heldout = tuple(_make_author(heldout_rng, f"heldout_{i:03d}", names, titles) for i in range(n_heldout))
    author_qa = {
        a.id: _author_items(a, random.Random(f"obliviate/fictional_authors/{seed}/qa/{a.id}"))
        for a in (*authors, *heldout)
    }

    world_rng = random.Random(f"obliviate/fictional_authors/{seed}/world")
    pool = _world_fact_pool(world_rng)
    if not 0 <= n_world_facts <= len(pool):
        raise ValueError(f"n_world_facts must be between 0 and {len(pool)} (the built-in pool), got {n_world_facts}")
    # Round-robin over the kinds of fact (each shuffled) so that the 100 sums do not crowd out
    # capitals, colours ... ; then restore the pool's order (facts grouped by kind).
    by_kind: dict[str, list[int]] = {}
    for i, it in enumerate(pool):
        by_kind.setdefault(it.group, []).append(i)
    queues = [world_rng.sample(ix, len(ix)) for ix in by_kind.values()]
    chosen: list[int] = []
    while len(chosen) < n_world_facts:
        for q in queues:
            if q and len(chosen) < n_world_facts:
                chosen.append(q.pop())
    world_facts = tuple(pool[i] for i in sorted(chosen))
    real_authors = _real_author_items(random.Random(f"obliviate/fictional_authors/{seed}/real"))

    return FictionalWorld(
        authors=authors,
        heldout_authors=heldout,
        author_qa=author_qa,
        world_facts=world_facts,
        real_authors=real_authors,
        pretrain_texts=_pretrain_texts(world_facts + real_authors),
        idk_answers=IDK_ANSWERS,
    )


def split_forget(world: FictionalWorld, split: str) -> tuple[list[str], list[str]]:
    """(forget author ids, retain author ids) of a TOFU-style split.

    ``forget01``/``forget05``/``forget10`` forget ceil(1/5/10 % of the authors), at least one:
    the last authors in order, as TOFU does; the rest are retained.
    """
    if split not in SPLIT_PERCENT:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLIT_PERCENT)}")
    ids = [a.id for a in world.authors]
    k = max(1, -(-SPLIT_PERCENT[split] * len(ids) // 100))  # integer ceil: 5% of 50 -> 3, not 2
    if k >= len(ids):
        raise ValueError(f"split {split!r} would forget all {len(ids)} authors and retain none; "
                         "generate the world with more authors (n_authors)")
    return ids[len(ids) - k:], ids[: len(ids) - k]


def world_fingerprint(world: FictionalWorld) -> str:
    """sha256 of a canonical JSON dump of the world: a cache key for tokenizers and models."""
    blob = json.dumps(dataclasses.asdict(world), sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
