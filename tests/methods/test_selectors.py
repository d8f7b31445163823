"""Forget-set selectors: random, hardest and worst_case (known answers on hand-built cases)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from obliviate import registry
from obliviate.methods.selection.worst_case import project_capped_simplex

torch.set_num_threads(1)


def _sel(name: str):
    return registry.get("selector", name).obj


def test_selectors_registered_with_provenance():
    assert {"random", "hardest", "worst_case"} <= set(registry.names("selector"))
    assert registry.get("selector", "worst_case").arxiv
    assert set(registry.get("selector", "random").modalities) == {"text", "image"}
    assert registry.get("selector", "worst_case").modalities == ("image",)


def test_random_exact_k_unique_and_seeded():
    sel = _sel("random")
    a = sel(100, 10, seed=3)
    assert len(a) == 10 and len(set(a)) == 10 and all(0 <= i < 100 for i in a)
    assert a == sel(list(range(100)), 10, seed=3)  # an int or a sized pool give the same draw
    assert a != sel(100, 10, seed=4)
    assert sorted(sel(5, 5, seed=0)) == [0, 1, 2, 3, 4]
    assert sel(5, 0, seed=0) == []
    with pytest.raises(ValueError, match="k=6"):
        sel(5, 6, seed=0)


def test_hardest_known_top_k():
    sel = _sel("hardest")
    scores = [0.1, 5.0, 3.0, 5.0, -1.0, 4.0]
    assert sel(scores, 3) == [1, 3, 5]  # ties (two 5.0) by the lower index
    assert sel(scores, 2, higher_is_harder=False) == [4, 0]  # lowest loss = most memorised
    assert len(set(sel(scores, 6))) == 6
    with pytest.raises(ValueError):
        sel(scores, 7)
    with pytest.raises(ValueError, match="NaN"):
        sel([0.0, float("nan")], 1)


def test_projection_onto_capped_simplex():
    w = project_capped_simplex(torch.tensor([3.0, -1.0, 0.5, 0.2, 0.9]), k=2)
    assert w.sum().item() == pytest.approx(2.0, abs=1e-5)
    assert (w >= 0).all() and (w <= 1).all()
    # hand-computed: μ = 0.2 gives clip(w − μ, 0, 1) = [1, 0, 0.3, 0, 0.7], which sums to k = 2
    assert torch.allclose(w, torch.tensor([1.0, 0.0, 0.3, 0.0, 0.7]), atol=1e-4)


def _separable_case():
    """Linear 2-class model; 4 'easy' points far from the boundary (loss ≈ 0), 8 near it (loss ≈ log 2)."""
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        model.bias.zero_()
    easy_x = torch.tensor([[8.0, 0.0], [9.0, 1.0], [-8.0, 0.0], [-9.0, -1.0]])
    easy_y = torch.tensor([0, 0, 1, 1])
    hard_x = torch.tensor([[0.05 * (i + 1) * (-1) ** i, 0.3 * i] for i in range(8)])
    hard_y = torch.tensor([i % 2 for i in range(8)])
    x, y = torch.cat([hard_x[:4], easy_x, hard_x[4:]]), torch.cat([hard_y[:4], easy_y, hard_y[4:]])
    return TensorDataset(x, y), model, {4, 5, 6, 7}


def test_worst_case_picks_examples_that_stay_fitted():
    ds, model, easy = _separable_case()
    sel = _sel("worst_case")
    picked = sel(ds, model, 4, seed=0, select_epochs=5, unlearn_steps=3, theta_lr=1e-3, batch_size=12)
    assert len(picked) == 4 and len(set(picked)) == 4
    assert set(picked) == easy
    again = sel(ds, model, 4, seed=0, select_epochs=5, unlearn_steps=3, theta_lr=1e-3, batch_size=12)
    assert again == picked
    with pytest.raises(ValueError):
        sel(ds, model, 13)


def test_worst_case_accepts_a_task():
    from obliviate.methods.vision.base import ClassificationTask

    ds, model, easy = _separable_case()
    x, y = ds.tensors
    task = ClassificationTask("toy", forget_set=TensorDataset(x[:6], y[:6]), retain_set=TensorDataset(x[6:], y[6:]),
                              test_set=TensorDataset(x, y), num_classes=2)
    picked = _sel("worst_case")(task, model, 3, seed=1, select_epochs=2, unlearn_steps=2, init="random")
    assert len(set(picked)) == 3 and all(0 <= i < 12 for i in picked)
