"""Every raw-text method, at a small preset, really unlearns a MUSE-format corpus (slow).

A tiny Llama memorises a generated MUSE-News-format corpus (`tests/fixtures/muse_tiny.py`: articles
about fictional people, KnowMem questions about them, VerbMem prompts), read by the real
`load_muse`. Each method then unlearns the raw forget articles; MUSE's own metrics must show
VerbMem and KnowMem on the forget set falling while KnowMem on the retain set (people the run never
sees: MUSE's retain2) holds. Thresholds come from `benchmarks/raw_text_margins.py` over seeds 0, 1, 2
(the worst value over seeds and the margin are written beside each). ``finetune`` (forgetting by
interference, no forget term) and ``dp2`` (needs a DP-SGD-trained base) are left out, as in the QA
behaviour test; idk, dpo, flat and eco refuse raw text (tests/methods/test_raw_text.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import muse_tiny as mt  # noqa: E402
from raw_text_margins import muse_scores, run_method  # noqa: E402

pytestmark = pytest.mark.slow

# The target (seed 0) memorises the corpus: VerbMem 1.0, KnowMem forget 1.0, KnowMem retain 1.0 (every seed).
TARGET_MIN = 0.9
# name -> (max VerbMem forget, max KnowMem forget, min KnowMem retain) after unlearning, seed 0 (target: 1/1/1).
# Each limit = the worst over seeds 0-2 (written after it) plus / minus a margin of 0.1 (forget limits capped at
# 0.9, so each one still asks for a fall from the target's 1.0). The never-trained retrain model scores about
# 0.44 / 0.56 on forget: answers share the question's names, so KnowMem forget has that floor here.
# rmu steers the last layer here (at layer 0 the forget and retain windows' states were not separable: retain
# fell to 0.17 before forget moved). whp_logit's offsets are context-free, and the corpus's forget and retain
# people share its 8 cities / jobs / pets / teams, so pushing down what the reinforcement pushed up costs retain
# answers too: retain holds at >= 0.545 over seeds at the chosen alpha (alpha 10: 0.47; alpha 6: forget 0.62).
LIMITS: dict[str, tuple[float, float, float]] = {
    "ga": (0.78, 0.81, 0.84),  # worst 0.677 / 0.708 / 0.939; margin 0.1 each
    "graddiff": (0.41, 0.65, 0.6),  # worst 0.307 / 0.551 / 0.704; margin 0.1 each
    "npo": (0.57, 0.5, 0.77),  # worst 0.467 / 0.403 / 0.868; margin 0.1 each
    "simnpo": (0.7, 0.82, 0.73),  # worst 0.598 / 0.716 / 0.830; margin 0.1 each
    "rmu": (0.48, 0.41, 0.84),  # worst 0.376 / 0.308 / 0.942; margin 0.1 each
    "undial": (0.52, 0.78, 0.87),  # worst 0.418 / 0.678 / 0.966; margin 0.1 each
    "wga": (0.44, 0.5, 0.48),  # worst 0.339 / 0.404 / 0.583; margin 0.1 each
    "satimp": (0.31, 0.44, 0.52),  # worst 0.211 / 0.344 / 0.622; margin 0.1 each
    "ceu": (0.26, 0.39, 0.62),  # worst 0.161 / 0.290 / 0.724; margin 0.1 each
    "sure": (0.53, 0.64, 0.85),  # worst 0.431 / 0.542 / 0.951; margin 0.1 each
    "grin": (0.45, 0.63, 0.57),  # worst 0.347 / 0.533 / 0.665; margin 0.1 each
    "task_vector": (0.61, 0.77, 0.72),  # worst 0.506 / 0.665 / 0.824; margin 0.1 each
    "whp": (0.85, 0.9, 0.66),  # worst 0.751 / 0.809 / 0.757; margin 0.1 each
    "whp_logit": (0.58, 0.58, 0.44),  # worst 0.482 / 0.481 / 0.545; margin 0.1 each
    "retrain": (0.54, 0.66, 0.9),  # worst 0.438 / 0.558 / 1.000; margin 0.1 each
}


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = mt.write_corpus(tmp_path_factory.mktemp("muse_tiny"))
    tok = mt.tokenizer_for(mt.load_task(root))
    task = mt.load_task(root, tok, seed=0)
    target = mt.build_target(task, tok, seed=0)
    return task, tok, target


def test_the_target_memorises_the_corpus(setting):
    task, tok, target = setting
    s = muse_scores(target, task, tok)
    assert min(s.values()) >= TARGET_MIN, s


@pytest.mark.parametrize("name", list(LIMITS))
def test_raw_text_method_forgets_the_articles_and_keeps_retain_knowledge(name, setting):
    task, tok, target = setting
    s = muse_scores(run_method(name, target, task, tok, seed=0), task, tok)
    verb, know_f, know_r = LIMITS[name]
    assert s["verbmem_forget"] <= verb, (name, s)
    assert s["knowmem_forget"] <= know_f, (name, s)
    assert s["knowmem_retain"] >= know_r, (name, s)
