"""SSD, Fisher forgetting, influence unlearning, FNN, LAF and Multi-GAN on a tiny digits MLP.

Fixture: sklearn's bundled 8×8 digits (no download), a 64→128→32→10 MLP with ``embed`` trained
for about a second, class-wise forgetting of one digit. Contract: each method runs, keeps the
output shape, binds its config and is deterministic under a seed. Behaviour: forget accuracy
falls while test accuracy on the other classes stays within a stated tolerance. Known-answer
tests cover the pure pieces (SSD dampening, Fisher noise scale, the Woodbury inverse).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from obliviate import registry
from obliviate.methods.vision.base import ClassificationTask, VisionContext

torch.set_num_threads(1)

METHODS = ("ssd", "fisher", "influence", "fnn", "laf", "multigan")
FORGET_CLASS = 0


class DigitsMLP(nn.Module):
    """64 → 128 → 32 (embedding) → 10."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def train_mlp(ds, seed: int, epochs: int = 30) -> nn.Module:
    torch.manual_seed(seed)
    model = DigitsMLP()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def build_digits_task(forget_class: int = FORGET_CLASS) -> tuple[ClassificationTask, nn.Module]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.long)
    idx_tr, idx_te = train_test_split(list(range(len(y))), test_size=360, stratify=d.target, random_state=0)
    xtr, ytr, xte, yte = x[idx_tr], y[idx_tr], x[idx_te], y[idx_te]
    f = ytr == forget_class
    task = ClassificationTask("digits-class", forget_set=TensorDataset(xtr[f], ytr[f]),
                              retain_set=TensorDataset(xtr[~f], ytr[~f]), test_set=TensorDataset(xte, yte),
                              num_classes=10, train_fn=train_mlp, forget_class=forget_class)
    return task, train_mlp(TensorDataset(xtr, ytr), seed=0)


def accuracy(model: nn.Module, ds, keep=None) -> float:
    x, y = ds.tensors
    if keep is not None:
        m = keep(y)
        x, y = x[m], y[m]
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


def scores(model, task) -> dict[str, float]:
    return {"forget": accuracy(model, task.forget_set), "retain": accuracy(model, task.retain_set),
            "test_other": accuracy(model, task.test_set, lambda y: y != task.forget_class),
            "test_forget": accuracy(model, task.test_set, lambda y: y == task.forget_class)}


@pytest.fixture(scope="module")
def digits():
    return build_digits_task()


def run_method(name: str, model, task, seed: int = 0, **overrides):
    info = registry.get("method", name)
    cfg = info.obj.make_config(overrides)
    return info.obj.run(cfg, copy.deepcopy(model), task, VisionContext(seed=seed))


# Small settings for the contract test (seconds); the behaviour test uses the settings below.
FAST = {
    "ssd": {},
    "fisher": {"max_samples": 200},
    "influence": {"hessian_samples": 200},
    "fnn": {"phases": 1},
    "laf": {"vae_epochs": 1, "epochs": 1},
    "multigan": {"gan_steps": 20, "epochs": 1, "synthetic_retain": 50, "synthetic_forget": 20},
}

# Behaviour settings. Paper defaults except where stated: SSD's α = 10 (tuned on ImageNet-scale
# nets) dampens nothing on this 13k-parameter MLP, α = 5 does; LAF's CNN learning rates assume
# ~90 MNIST batches per epoch, the digits forget class gives 9 (batch 16), so the rates are raised;
# Multi-GAN trains its GANs for fewer steps to stay within the test budget.
BEHAVIOUR = {
    "ssd": {"alpha": 5.0},
    "fisher": {},
    # the reference WoodFisher recursion is nearly a gradient step and cannot forget a digits class
    # within 5 test points at any α (see InfluenceConfig.alpha); the exact Woodbury option can
    "influence": {"hessian": "woodbury", "alpha": 2.0},
    "fnn": {},
    # LAF here is all-or-nothing by seed: forget accuracy seeds 0-4 0.007 / 1.0 / 0.0 / 0.007 / 0.014
    # (kept-class test 0.954-0.963); seed 1 leaves the class intact (before the per-epoch reshuffle
    # it was seed 4). The test runs seed 0: margin 0.29 to FORGET_MAX.
    "laf": {"batch_size": 16, "lr_ue": 1e-3, "lr_ra": 2e-3, "epochs": 10},
    "multigan": {"gan_steps": 150, "epochs": 2},
}
FORGET_MAX = 0.30  # forget-set accuracy after unlearning (1.00 before)
TEST_DROP_MAX = 0.05  # allowed fall of test accuracy on the other classes


def test_registered_with_provenance_and_configs_bind():
    from obliviate.config import ConfigError

    for name in METHODS:
        info = registry.get("method", name)
        assert info.paper and info.arxiv, name
        assert "image" in info.modalities
        cfg = info.obj.make_config({})
        assert cfg == info.obj.config_cls()
        with pytest.raises(ConfigError, match="unknown key"):
            info.obj.make_config({"not_a_field": 1})


@pytest.mark.parametrize("name", METHODS)
def test_contract_runs_keeps_shape_and_is_deterministic(name, digits):
    task, model = digits
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = run_method(name, model, task, seed=0, **FAST[name])
    b = run_method(name, model, task, seed=0, **FAST[name])
    x = task.test_set.tensors[0][:7]
    with torch.no_grad():
        out = a(x)
    assert out.shape == (7, 10) and torch.isfinite(out).all()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), f"{name} is not deterministic"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), f"{name} modified its input"


@pytest.mark.parametrize("name", METHODS)
def test_behaviour_forgets_class_and_keeps_others(name, digits):
    task, model = digits
    base = scores(model, task)
    assert base["forget"] > 0.95
    got = scores(run_method(name, model, task, seed=0, **BEHAVIOUR[name]), task)
    assert got["forget"] <= FORGET_MAX, (name, got)
    assert got["test_other"] >= base["test_other"] - TEST_DROP_MAX, (name, base, got)


# --- known answers for the pure pieces -------------------------------------------------------


def test_ssd_dampening_factor_known_answer():
    from obliviate.methods.vision.ssd import dampening_factor

    i_f = torch.tensor([10.0, 100.0, 5.0, 0.0, 30.0])
    i_d = torch.tensor([2.0, 2.0, 1.0, 0.0, 3.0])
    # α = 10: selected where I_f > 10·I_D → only [1] (100 > 20); β = λ·I_D/I_f = 2/100
    assert torch.allclose(dampening_factor(i_f, i_d, alpha=10, lam=1), torch.tensor([1, 0.02, 1, 1, 1.0]))
    # α = 2: [0] 10 > 4 → 0.2, [1] → 0.02, [2] 5 > 2 → 0.2, [3] 0 > 0 is false → 1, [4] 30 > 6 → 0.1
    assert torch.allclose(dampening_factor(i_f, i_d, alpha=2, lam=1), torch.tensor([0.2, 0.02, 0.2, 1, 0.1]))
    # λ large: β capped at 1
    assert torch.allclose(dampening_factor(i_f, i_d, alpha=2, lam=100), torch.ones(5))


def test_ssd_with_infinite_alpha_is_a_no_op(digits):
    task, model = digits
    out = run_method("ssd", model, task, alpha=float("inf"))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in out.state_dict().items())


def test_fisher_noise_variance_known_answer():
    from obliviate.methods.vision.fisher import noise_variance

    f = torch.tensor([[1.0, 3.0], [0.0, 1e-3]])
    # 1/(F+ε) = [[1, 1/3], [1e8 → clamp 1e3, 1e3]]; ×α = 1e-2; row means: [2/3·1e-2, 10]
    var = noise_variance(f, 1e-2, eps=1e-8, clamp=1e3)
    assert torch.allclose(var, torch.tensor([[2 / 300, 2 / 300], [10.0, 10.0]]), rtol=1e-4)
    raw = noise_variance(f, 1e-2, clamp=1e3, row_mean=False, scale=10.0)
    assert torch.allclose(raw, torch.tensor([[0.1, 1 / 30], [100.0, 100.0]]), rtol=1e-4)
    b = noise_variance(torch.tensor([4.0]), 1.0, eps=0.0)  # 1-d: no row mean
    assert torch.allclose(b, torch.tensor([0.25]))


def test_fisher_diagonal_matches_loop():
    from obliviate.methods.vision._importance import fisher_diagonal

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    x = torch.randn(5, 3)
    loader = torch.utils.data.DataLoader(TensorDataset(x, torch.zeros(5, dtype=torch.long)), batch_size=2)
    fd = fisher_diagonal(model, loader, torch.device("cpu"))
    ref = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(5):  # Golatkar's loop: Σ_y p_y (∇ log p_y)²
        logp = torch.log_softmax(model(x[i:i + 1]), -1)[0]
        for c in range(3):
            g = torch.autograd.grad(logp[c], list(model.parameters()), retain_graph=True)
            for (n, _), gi in zip(model.named_parameters(), g):
                ref[n] += logp[c].exp().item() * gi ** 2 / 5
    assert all(torch.allclose(fd[n], ref[n], atol=1e-6) for n in ref)


def test_woodfisher_inverse_matches_dense_inverse():
    from obliviate.methods.vision.influence import woodfisher_inverse_vp

    torch.manual_seed(0)
    g = torch.randn(6, 9, dtype=torch.float64)
    v = torch.randn(9, dtype=torch.float64)
    h = 0.1 * torch.eye(9, dtype=torch.float64) + g.T @ g / 6
    assert torch.allclose(woodfisher_inverse_vp(g, v, 0.1), torch.linalg.solve(h, v), atol=1e-8)


def test_fnn_retention_and_rank_strengths():
    from obliviate.methods.vision.fnn import rank_strengths, retention

    phi = rank_strengths(torch.tensor([0.1, 0.9, 0.5]), phi_min=1.0, phi_max=100.0)
    assert torch.allclose(phi, torch.tensor([100.0, 1.0, 10.0]))  # top activation → φ_min
    assert torch.allclose(retention(phi, 2.0), torch.exp(torch.tensor([-0.02, -2.0, -0.2])))


def test_multigan_label_inversion():
    from obliviate.methods.vision.multigan import invert_labels

    logits = torch.tensor([[3.0, 1.0, -2.0], [0.0, -5.0, 1.0]])
    y = torch.tensor([0, 2])
    assert invert_labels(logits, y, "least_likely", 3).tolist() == [2, 1]
    assert invert_labels(logits, y, "reverse", 3).tolist() == [2, 0]
    with pytest.raises(ValueError):
        invert_labels(logits, y, "shuffle", 3)


def test_laf_alignment_loss_known_answer():
    from obliviate.methods.vision.laf import alignment_loss

    e = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # retain identical (c_r = 0); forget rotated 90° (c_f = 1): Σ_r (0 − log Σ_f e^{1/τ}) = −2·(log 2 + 1/τ)
    got = alignment_loss(e, e, e, e.flip(1), temperature=2.0)
    assert got.item() == pytest.approx(-2 * (torch.log(torch.tensor(2.0)).item() + 0.5), abs=1e-6)
