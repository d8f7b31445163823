"""Image-classifier baselines (retrain, FT, GA, NegGrad+, RL, ℓ1-sparse, prune-first, SalUn, SCRUB,
Boundary Shrink) on a tiny sklearn-digits MLP: contract, known-answer and behaviour tests."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from obliviate import registry
from obliviate.methods.vision.base import ClassificationTask, VisionContext

METHODS = ("img_retrain", "img_finetune", "img_ga", "neggrad_plus", "random_label", "l1_sparse",
           "prune_first", "salun", "scrub", "boundary_shrink")
FORGET_CLASS = 3


class DigitsMLP(nn.Module):
    """64 → 64 → 32 (embedding) → 10."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_mlp(ds: TensorDataset, seed: int, epochs: int = 30) -> nn.Module:
    torch.manual_seed(seed)
    model = DigitsMLP()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def accuracy(model: nn.Module, ds: TensorDataset) -> float:
    x, y = ds.tensors
    if len(y) == 0:
        return float("nan")
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def _subset(x: torch.Tensor, y: torch.Tensor, keep: torch.Tensor) -> TensorDataset:
    return TensorDataset(x[keep], y[keep])


def digits_data():
    """(x_train, y_train, x_test, y_test, the original MLP trained on the whole training split)."""
    torch.set_num_threads(1)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    xtr, xte, ytr, yte = train_test_split(d.data / 16.0, d.target, test_size=360, stratify=d.target, random_state=0)
    xtr, xte = torch.tensor(xtr, dtype=torch.float32), torch.tensor(xte, dtype=torch.float32)
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)
    original = train_mlp(TensorDataset(xtr, ytr), seed=0)
    return xtr, ytr, xte, yte, original


@pytest.fixture(scope="module")
def digits():
    return digits_data()


def make_task(digits, scenario: str) -> ClassificationTask:
    xtr, ytr, xte, yte, _ = digits
    if scenario == "class":
        forget = ytr == FORGET_CLASS
    else:
        forget = torch.zeros(len(ytr), dtype=torch.bool)
        forget[torch.randperm(len(ytr), generator=torch.Generator().manual_seed(0))[: len(ytr) // 10]] = True
    return ClassificationTask(
        name=f"digits-{scenario}", forget_set=_subset(xtr, ytr, forget), retain_set=_subset(xtr, ytr, ~forget),
        test_set=TensorDataset(xte, yte), num_classes=10, train_fn=train_mlp,
        forget_class=FORGET_CLASS if scenario == "class" else None)


def run_method(name: str, model: nn.Module, task: ClassificationTask, seed: int = 0, **overrides) -> nn.Module:
    spec = registry.get("method", name).obj
    return spec.run(spec.make_config(overrides), model, task, VisionContext(seed=seed))


def scores(model: nn.Module, task: ClassificationTask) -> dict[str, float]:
    """Forget / retain accuracy, and test accuracy split into kept classes and the forgotten class."""
    x, y = task.test_set.tensors
    out = {"forget": accuracy(model, task.forget_set), "retain": accuracy(model, task.retain_set),
           "test": accuracy(model, task.test_set)}
    if task.forget_class is not None:
        out["test_kept"] = accuracy(model, _subset(x, y, y != task.forget_class))
        out["test_forgot"] = accuracy(model, _subset(x, y, y == task.forget_class))
    return out


# --------------------------------------------------------------------------------------------
# Contract: every method runs, returns a same-shaped classifier, binds its config, is seeded.
# --------------------------------------------------------------------------------------------

def _short(name: str) -> dict:
    """One-epoch overrides so the contract test stays fast (behaviour tests use the defaults)."""
    fields = {f.name for f in dataclasses.fields(registry.get("method", name).obj.config_cls)}
    return {"epochs": 1} if "epochs" in fields else {}


@pytest.mark.parametrize("name", METHODS)
def test_contract_runs_binds_and_is_deterministic(name, digits):
    info = registry.get("method", name)
    assert info.paper and info.arxiv and "image" in info.modalities
    spec = info.obj
    default = spec.make_config({})
    assert dataclasses.is_dataclass(default) and spec.config_cls.__dataclass_params__.frozen
    # every field binds from its own default value (the preset round trip) ...
    assert spec.make_config({f.name: getattr(default, f.name) for f in dataclasses.fields(default)}) == default
    # ... and an unknown key is an error naming the key
    from obliviate.config import ConfigError

    with pytest.raises(ConfigError, match="not_a_field"):
        spec.make_config({"not_a_field": 1})

    original = digits[4]
    task = make_task(digits, "class")
    task.train_fn = lambda ds, seed: train_mlp(ds, seed, epochs=2)
    before = {k: v.clone() for k, v in original.state_dict().items()}
    a = run_method(name, original, task, seed=0, **_short(name))
    b = run_method(name, original, task, seed=0, **_short(name))
    x = task.test_set.tensors[0][:7]
    with torch.no_grad():
        out_a, out_b = a(x), b(x)
    assert out_a.shape == (7, 10)
    assert torch.isfinite(out_a).all()
    assert torch.equal(out_a, out_b), f"{name} is not deterministic under a fixed seed"
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items()), f"{name} modified its input"
    assert set(a.state_dict()) == set(original.state_dict()), "the returned model must be a plain copy"


def test_retrain_without_train_fn_is_a_clear_error(digits):
    task = make_task(digits, "class")
    task.train_fn = None
    with pytest.raises(ValueError, match="train_fn"):
        run_method("img_retrain", digits[4], task)


def test_prune_first_rejects_bad_inner(digits):
    from obliviate.config import ConfigError

    task = make_task(digits, "class")
    with pytest.raises(ConfigError):
        run_method("prune_first", digits[4], task, inner_config={"bogus": 1})
    with pytest.raises(ValueError, match="prune_first"):
        run_method("prune_first", digits[4], task, inner="prune_first")


# --------------------------------------------------------------------------------------------
# Known answers for the pure pieces.
# --------------------------------------------------------------------------------------------

def test_saliency_mask_selects_exactly_gamma_fraction_globally():
    from obliviate.methods.vision.salun import saliency_mask

    grads = {"a": torch.tensor([[0.1, -5.0], [0.3, 0.0]]), "b": torch.tensor([-0.2, 4.0, 0.05, 1.0, -0.6, 2.0])}
    n = 10
    for gamma in (0.0, 0.3, 0.5, 0.77, 1.0):
        m = saliency_mask(grads, gamma)
        assert int(sum(v.sum() for v in m.values())) == int(n * gamma)
    m = saliency_mask(grads, 0.5)  # top-5 |g|: 5.0, 4.0, 2.0, 1.0, 0.6 — one threshold across tensors
    assert m["a"].tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert m["b"].tolist() == [0.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        saliency_mask(grads, 1.5)


def test_l1_schedule_values():
    from obliviate.methods.vision.l1_sparse import l1_norm, l1_schedule

    got = [l1_schedule(t, 1e-4, 10) for t in range(10)]
    assert got == pytest.approx([1e-4 * (1 - t / 10) for t in range(10)])
    assert got[0] == 1e-4 and got[-1] == pytest.approx(1e-5)
    # two penalty-free epochs at the end: decay over 8 epochs, then 0
    got = [l1_schedule(t, 2e-4, 10, no_l1_epochs=2) for t in range(10)]
    assert got == pytest.approx([2e-4, 1.75e-4, 1.5e-4, 1.25e-4, 1e-4, 0.75e-4, 0.5e-4, 0.25e-4, 0.0, 0.0])
    assert [l1_schedule(t, 3e-4, 4, no_l1_epochs=4) for t in range(4)] == [3e-4] * 4  # upstream: constant
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0]]))
        lin.bias.fill_(-0.5)
    assert l1_norm(lin).item() == pytest.approx(3.5)  # biases included, as upstream


def test_l1_sparse_with_zero_gamma_is_finetuning(digits):
    task = make_task(digits, "class")
    common = {"epochs": 2, "lr": 0.05, "batch_size": 128}
    ft = run_method("img_finetune", digits[4], task, **common)
    l1 = run_method("l1_sparse", digits[4], task, gamma=0.0, **common)
    for (k, v), (_, w) in zip(ft.state_dict().items(), l1.state_dict().items()):
        assert torch.equal(v, w), k


def test_global_magnitude_pruning_is_exact():
    from obliviate.methods.vision.prune_first import global_magnitude_masks

    torch.manual_seed(0)
    w = {"l1": torch.randn(30, 20), "l2": 10 * torch.randn(7, 30)}  # different scales: one global threshold
    n = 30 * 20 + 7 * 30
    for s in (0.0, 0.5, 0.8, 0.95):
        m = global_magnitude_masks(w, s)
        assert int(sum((v == 0).sum() for v in m.values())) == round(s * n)
    m = global_magnitude_masks(w, 0.8)
    pruned = torch.cat([w[k][m[k] == 0].abs() for k in w])
    kept = torch.cat([w[k][m[k] == 1].abs() for k in w])
    assert pruned.max() <= kept.min()
    assert (m["l2"] == 1).float().mean() > (m["l1"] == 1).float().mean()  # the larger-scale layer keeps more


def test_prune_first_output_has_the_requested_sparsity(digits):
    from obliviate.methods.vision.prune_first import prunable_weights

    task = make_task(digits, "class")
    out = run_method("prune_first", digits[4], task, sparsity=0.8, retrain_epochs=2, inner_config={"epochs": 2})
    weights = prunable_weights(out)
    n = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    assert zeros == round(0.8 * n)  # pruned weights stayed exactly 0 through the inner method
    assert all(not hasattr(m, "parametrizations") for m in out.modules())


def test_random_labels_never_equal_true_labels():
    from obliviate.methods.vision.random_label import random_labels

    y = torch.arange(10).repeat(500)
    g = torch.Generator().manual_seed(0)
    r = random_labels(y, 10, g)
    assert not (r == y).any()
    assert r.min() >= 0 and r.max() <= 9
    for c in range(10):  # every wrong class is reachable, roughly uniformly (500 draws / 9 classes ≈ 56)
        counts = torch.bincount(r[y == c], minlength=10)
        assert counts[c] == 0 and (counts[torch.arange(10) != c] > 25).all()
    assert (random_labels(y, 10, g, exclude_true=False) == y).any()  # upstream behaviour can keep y
    with pytest.raises(ValueError):
        random_labels(torch.zeros(3, dtype=torch.long), 1)


def test_neggrad_plus_loss_known_answer():
    from obliviate.methods.vision.neggrad_plus import l2_to_reference, neggrad_plus_loss

    retain_logits, retain_y = torch.tensor([[0.0, 0.0]]), torch.tensor([0])  # CE = ln 2
    forget_logits, forget_y = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([1])  # p = 3/4, CE = ln 4/3
    got = neggrad_plus_loss(retain_logits, retain_y, forget_logits, forget_y, alpha=0.9, l2_to_original=0.5)
    assert got.item() == pytest.approx(0.9 * (math.log(2) + 0.5) - 0.1 * math.log(4 / 3))
    a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        for p, q in zip(a.parameters(), b.parameters()):
            p.copy_(q + 1.0)  # 3 parameters, each 1 away
    assert l2_to_reference(a, b, weight_decay=0.2).item() == pytest.approx(0.1 * 3)


def test_scrub_kl_known_answer():
    from obliviate.methods.vision.scrub import kd_kl

    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[0.0, math.log(3.0)]])  # teacher probs (1/4, 3/4) at τ = 1
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert kd_kl(s, t, 1.0).item() == pytest.approx(expected)
    assert kd_kl(t, t, 4.0).item() == pytest.approx(0.0, abs=1e-7)
    # τ² scaling: at τ = 2 the teacher is softmax(t/2) and the loss is multiplied by 4
    p = torch.softmax(t / 2, 1)[0]
    assert kd_kl(s, t, 2.0).item() == pytest.approx(4 * float((p * (p / 0.5).log()).sum()), rel=1e-5)


def test_boundary_neighbour_labels_skip_the_true_class():
    from obliviate.methods.vision.boundary_shrink import fgsm, neighbour_labels

    logits = torch.tensor([[5.0, 1.0, 3.0], [0.0, 2.0, 1.0]])
    y = torch.tensor([0, 2])
    assert neighbour_labels(logits, y).tolist() == [2, 1]
    assert neighbour_labels(logits, y, exclude_true=False).tolist() == [0, 1]  # upstream: may return y
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[0.5, 0.5]])
    # ∇_x CE for y = 0 points from class 0 towards class 1: sign = (−1, +1)
    assert fgsm(lin, x, torch.tensor([0]), 0.1)[0].tolist() == pytest.approx([0.4, 0.6])
    x = torch.tensor([[0.95, 0.0]])
    assert fgsm(lin, x, torch.tensor([1]), 0.1, 0.0, 1.0)[0].tolist() == [1.0, 0.0]  # (1.05, −0.1) clipped


def test_salun_only_moves_salient_weights(digits):
    task = make_task(digits, "class")
    original = digits[4]
    out = run_method("salun", original, task, gamma=0.2, epochs=1)
    n = sum(p.numel() for p in original.parameters())
    changed = sum(int((p != q).sum()) for p, q in zip(original.parameters(), out.parameters()))
    assert 0 < changed <= int(0.2 * n)


# --------------------------------------------------------------------------------------------
# Behaviour on digits (seeded): forgetting happens, the rest of the model holds.
# --------------------------------------------------------------------------------------------

# FT-style methods keep the sparsity paper's lr 0.01 as default; on a digits MLP 10 epochs at 0.01
# only take forget accuracy from 0.99 to ~0.93, so the class-wise test uses lr 0.1, the top of the
# authors' grid [1e-4, 1e-1]. Every other method runs with its shipped defaults.
# prune_first at the paper's 0.95 keeps ~330 of this MLP's 6.5k weights: after OMP + FT (lr 0.1) the
# kept-class test accuracy is 0.91 (original 0.97), the capacity of so small a sparse net; at 0.9 the
# sparse-retrained model holds the class so firmly that FT leaves forget accuracy at 0.72 (0.93: 0.49).
# The test runs OMP at 0.9 with RL as the inner unlearner (one of the paper's FT/GA/RL/FF/IU):
# forget 0.00, kept-class test 0.947.
CLASS_OVERRIDES = {"img_finetune": {"lr": 0.1}, "l1_sparse": {"lr": 0.1},
                   "prune_first": {"sparsity": 0.9, "inner": "random_label"}}
TEST_TOLERANCE = 0.05  # max drop of test accuracy on the kept classes / whole test set
# The tightest case is NegGrad+ at its shipped defaults: kept-class test accuracy over seeds 0-4
# 0.932 / 0.916 / 0.932 / 0.904 / 0.932 (original 0.972, so the limit is 0.922; the test runs seed 0,
# margin 0.010). Before each epoch reshuffled its loaders (one generator per VisionContext) it was
# 0.941 / 0.941 / 0.935 / 0.929 / 0.901: as seed-sensitive, a little higher.


@pytest.fixture(scope="module")
def class_results(digits):
    task = make_task(digits, "class")
    res = {"original": scores(digits[4], task)}
    for name in METHODS:
        res[name] = scores(run_method(name, digits[4], task, **CLASS_OVERRIDES.get(name, {})), task)
    return res


def test_retrain_reference_never_saw_the_class(class_results):
    r, o = class_results["img_retrain"], class_results["original"]
    assert r["forget"] <= 0.02 and r["test_forgot"] <= 0.02
    assert r["test_kept"] >= o["test_kept"] - TEST_TOLERANCE


@pytest.mark.parametrize("name", [m for m in METHODS if m != "img_retrain"])
def test_classwise_forgetting_lowers_forget_accuracy_and_keeps_the_rest(name, class_results):
    o, r = class_results["original"], class_results[name]
    assert o["forget"] > 0.95
    assert r["forget"] <= o["forget"] - 0.3, f"{name} did not forget class {FORGET_CLASS}: {r}"
    assert r["test_forgot"] <= o["test_forgot"] - 0.3, f"{name}: held-out examples of the class still recognised: {r}"
    assert r["test_kept"] >= o["test_kept"] - TEST_TOLERANCE, f"{name} damaged the kept classes: {r}"
    assert r["retain"] >= o["retain"] - TEST_TOLERANCE, f"{name} damaged the retain set: {r}"


# Random 10% forgetting: the original fits the forget set perfectly (1.00), the retrained model
# only at test level (~0.97), so the gap is a handful of examples. Relabelling methods (RL, SalUn)
# close it reliably; the ascent / distillation methods with class-wise-tuned defaults move at most
# an example or two (and FT / ℓ1 none), so for them the test only checks they do no harm. Boundary
# Shrink is class-wise only (neighbour labels of random examples damage every class).
RANDOM_MOVERS = ("random_label", "salun")
RANDOM_HARMLESS = ("img_ga", "neggrad_plus", "scrub")


@pytest.fixture(scope="module")
def random_results(digits):
    task = make_task(digits, "random")
    res = {"original": scores(digits[4], task), "img_retrain": scores(run_method("img_retrain", digits[4], task), task)}
    for name in RANDOM_MOVERS + RANDOM_HARMLESS:
        res[name] = scores(run_method(name, digits[4], task), task)
    return res


@pytest.mark.parametrize("name", RANDOM_MOVERS)
def test_random_forgetting_moves_towards_retrain(name, random_results):
    o, rt, r = random_results["original"], random_results["img_retrain"], random_results[name]
    assert o["forget"] > rt["forget"]  # the original fits its training data better than an unseen split
    assert r["forget"] < o["forget"], f"{name} left the forget set untouched: {r}"
    assert abs(r["forget"] - rt["forget"]) < abs(o["forget"] - rt["forget"])  # closer to Retrain
    assert r["test"] >= o["test"] - 0.03, f"{name} lost test accuracy: {r}"


@pytest.mark.parametrize("name", RANDOM_HARMLESS)
def test_random_forgetting_does_no_harm(name, random_results):
    o, r = random_results["original"], random_results[name]
    assert r["forget"] <= o["forget"]
    assert r["test"] >= o["test"] - 0.03 and r["retain"] >= o["retain"] - 0.03, f"{name}: {r}"
