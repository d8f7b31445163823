"""MUSE scalability and sustainability protocols on the small built-in benchmark (slow)."""

import pytest

from obliviate.protocols import scalability, sustainability

pytestmark = pytest.mark.slow


def test_scalability_rows_follow_growing_forget_sets(quick_bench):
    rows = scalability(quick_bench, "npo", splits=("forget05", "forget10"), metrics=("forget_quality", "forget_prob"))
    assert [r["split"] for r in rows] == ["forget05", "forget10"]
    assert rows[0]["n_forget"] < rows[1]["n_forget"]
    for r in rows:
        assert 0.0 <= r["forget_quality"] <= 1.0 and r["seconds"] > 0


def test_sustainability_tracks_sequential_requests(quick_bench):
    rows = sustainability(quick_bench, "npo", split="forget10", n_requests=2, metrics=("forget_prob", "retain_prob"))
    assert [r["request"] for r in rows] == [0, 1, 2]
    assert rows[0]["n_forgotten"] == 0 < rows[1]["n_forgotten"] < rows[2]["n_forgotten"]
    # after both requests, everything requested is forgotten much more than before any request
    assert rows[2]["forget_prob"] < 0.6 * rows[0]["forget_prob"]
    with pytest.raises(ValueError, match="cannot make"):
        sustainability(quick_bench, "npo", split="forget10", n_requests=50)
