"""Known-answer tests for the shared losses of WGA, SatImp, UNDIAL, CE-U, RMU and FLAT
(hand-computed values in the comments)."""

import math

import pytest
import torch
import torch.nn.functional as F

from obliviate.methods import losses

LN2 = math.log(2.0)


def _logits_for(probs_rows):
    return torch.log(torch.tensor(probs_rows, dtype=torch.float32))


def test_wga_weights_are_detached_powers_of_p():
    lp = torch.log(torch.tensor([0.5, 0.25])).requires_grad_()
    # β = 1: w = p = [0.5, 0.25]; β = 2: w = p² = [0.25, 0.0625]
    assert torch.allclose(losses.wga_token_weights(lp, 1.0), torch.tensor([0.5, 0.25]))
    assert torch.allclose(losses.wga_token_weights(lp, 2.0), torch.tensor([0.25, 0.0625]))
    assert not losses.wga_token_weights(lp, 1.0).requires_grad


def test_satimp_weights_known_values():
    lp = torch.log(torch.tensor([0.5, 0.25]))
    # p = 0.5: 0.5^5 · 0.5^1 = 1/64; p = 0.25: 0.25^5 · 0.75 = 3/4096
    w = losses.satimp_token_weights(lp, 5.0, 1.0)
    assert torch.allclose(w, torch.tensor([1 / 64, 3 / 4096]))


def test_weighted_ascent_loss_known_value_and_mask():
    lp = torch.log(torch.tensor([[0.5, 0.25, 0.9]]))
    mask = torch.tensor([[True, True, False]])
    w = torch.tensor([[0.5, 0.25, 100.0]])
    # -mean[w·ℓ] over the two answer tokens = (0.5·log 0.5 + 0.25·log 0.25)/2 = (-ln2/2 - ln2/2)/2 = -ln2/2
    got = losses.weighted_ascent_loss(lp, mask, w).item()
    assert math.isclose(got, -LN2 / 2, rel_tol=1e-6)


def test_wga_end_to_end_from_logits():
    # vocab 3; answer tokens get p = 0.5 and 0.8 (as in test_losses.py); β = 1:
    # L = (0.5·ln 0.5 + 0.8·ln 0.8)/2
    logits = _logits_for([[[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]]])
    lp, mask = losses.token_logprobs(logits, torch.tensor([[-100, 1, 2]]))
    got = losses.weighted_ascent_loss(lp, mask, losses.wga_token_weights(lp, 1.0)).item()
    assert math.isclose(got, (0.5 * math.log(0.5) + 0.8 * math.log(0.8)) / 2, rel_tol=1e-5)


def test_soft_cross_entropy_known_value_and_mask():
    logits = _logits_for([[[0.5, 0.25, 0.25], [0.9, 0.05, 0.05]]])
    q = torch.tensor([[[0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]])
    # first position: -(0.5 ln 0.25 + 0.5 ln 0.25) = ln 4; the second is masked out
    got = losses.soft_cross_entropy(logits, q, torch.tensor([[True, False]])).item()
    assert math.isclose(got, math.log(4.0), rel_tol=1e-5)


def test_undial_soft_targets_known_values():
    # uniform teacher, β = ln 2 on token 0: softmax([-ln2, 0, 0]) = [0.5, 1, 1]/2.5 = [0.2, 0.4, 0.4]
    t = losses.undial_soft_targets(torch.zeros(1, 3), torch.tensor([0]), LN2)
    assert torch.allclose(t, torch.tensor([[0.2, 0.4, 0.4]]), atol=1e-6)
    # a teacher confident in the gold token by exactly β becomes uniform: [10, 0, 0] - [10, 0, 0]
    t = losses.undial_soft_targets(torch.tensor([[10.0, 0.0, 0.0]]), torch.tensor([0]), 10.0)
    assert torch.allclose(t, torch.full((1, 3), 1 / 3), atol=1e-6)


def test_ceu_targets_and_gradient():
    z = _logits_for([[0.5, 0.25, 0.25]]).requires_grad_()
    q = losses.ceu_targets(z, torch.tensor([0]))
    # true token removed, the rest renormalised: [0, 0.25, 0.25]/0.5
    assert torch.allclose(q, torch.tensor([[0.0, 0.5, 0.5]]), atol=1e-6)
    assert not q.requires_grad
    loss = losses.soft_cross_entropy(z, q, torch.tensor([True]))
    assert math.isclose(loss.item(), math.log(4.0), rel_tol=1e-5)  # -(2 · 0.5 ln 0.25)
    loss.backward()
    # ∂CE/∂z = softmax(z) - q = [0.5, -0.25, -0.25]: the true token is pushed down by p(y)
    assert torch.allclose(z.grad, torch.tensor([[0.5, -0.25, -0.25]]), atol=1e-6)


def test_skip_first_answer_tokens():
    labels = torch.tensor([[-100, 5, 6, 7, -100], [-100, -100, 9, -100, -100]])
    assert losses.skip_first_answer_tokens(labels, 1).tolist() == [[-100, -100, 6, 7, -100], [-100] * 5]
    assert torch.equal(losses.skip_first_answer_tokens(labels, 0), labels)


def test_rmu_control_vector_norm_sign_and_seed():
    u = losses.rmu_control_vector(16, 6.5, seed=3)
    assert math.isclose(u.norm().item(), 6.5, rel_tol=1e-6)
    assert (u >= 0).all()  # u ~ U[0,1)^d before normalising
    assert torch.equal(u, losses.rmu_control_vector(16, 6.5, seed=3))
    assert not torch.equal(u, losses.rmu_control_vector(16, 6.5, seed=4))


def test_masked_mse_known_values():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    target = torch.zeros_like(h)
    # token 0 only: (1 + 4)/2 = 2.5; both: ((1+4)/2 + (9+16)/2)/2 = 7.5 = torch mse_loss
    assert math.isclose(losses.masked_mse(h, target, torch.tensor([[1, 0]])).item(), 2.5)
    assert math.isclose(losses.masked_mse(h, target, torch.ones(1, 2)).item(), 7.5)
    assert math.isclose(F.mse_loss(h, target).item(), 7.5)


def test_mean_token_prob_and_padded_batch_mean():
    probs = [[[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]],
             [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [1 / 3, 1 / 3, 1 / 3]]]
    logits = _logits_for(probs)
    labels = torch.tensor([[-100, 1, 2], [-100, 0, -100]])
    # per sequence: row 0 (0.5 + 0.8)/2 = 0.65; row 1 has one answer token, p = 0.6
    assert torch.allclose(losses.mean_token_prob(logits, labels), torch.tensor([0.65, 0.6]), atol=1e-6)
    # official code: (0.5 + 0.8 + 0.6) / (B·(T-1) = 4) = 0.475, padding in the denominator
    assert torch.allclose(losses.padded_batch_mean_prob(logits, labels), torch.tensor([0.475]), atol=1e-6)


def test_flat_loss_known_values():
    pe, pf = torch.tensor([0.5]), torch.tensor([0.2])
    # KL: -g(0.5) + exp(0.2 - 1) = -0.5 + e^{-0.8}
    assert math.isclose(losses.flat_loss(pe, pf, "kl").item(), -0.5 + math.exp(-0.8), rel_tol=1e-6)
    # Pearson: -0.5 + (0.2²/4 + 0.2) = -0.29
    assert math.isclose(losses.flat_loss(pe, pf, "pearson").item(), -0.29, rel_tol=1e-6)
    # TV: -tanh(0.5)/2 + tanh(0.2)/2
    assert math.isclose(losses.flat_loss(pe, pf, "tv").item(), (math.tanh(0.2) - math.tanh(0.5)) / 2, rel_tol=1e-6)
    # JS: -(ln2 - ln(1 + e^{-0.5})) + ln(1 + e^{0.2}) - ln2
    want = -(LN2 - math.log1p(math.exp(-0.5))) + math.log1p(math.exp(0.2)) - LN2
    assert math.isclose(losses.flat_loss(pe, pf, "js").item(), want, rel_tol=1e-6)


# f* in closed form (f-GAN Table 2), to check every (g*, f*∘g*) pair composes correctly
F_STAR = {
    "kl": lambda t: math.exp(t - 1), "reverse_kl": lambda t: -1 - math.log(-t),
    "js": lambda t: -math.log(2 - math.exp(t)), "pearson": lambda t: t * t / 4 + t, "tv": lambda t: t,
    "squared_hellinger": lambda t: t / (1 - t), "neyman": lambda t: 2 - 2 * math.sqrt(1 - t),
    "jeffrey": lambda t: t + t * t / 4 + t ** 3 / 16,
}


@pytest.mark.parametrize("name", sorted(losses.F_DIVERGENCES))
def test_f_divergence_pairs_compose(name):
    g, fg = losses.f_divergence_pairs(name)
    for v in (0.05, 0.3, 0.7):
        t = g(torch.tensor(v)).item()
        assert math.isclose(fg(torch.tensor(v)).item(), F_STAR[name](t), rel_tol=1e-5, abs_tol=1e-6)


def _official_flat(v_good: float, v_bad: float, div: str) -> float:
    """FLAT dataloader.py `get_contrastive_loss`, transcribed: loss = activation(v_e) - conjugate(v_f)."""
    x, y = v_good, v_bad
    act = {"kl": lambda x: -x, "reverse_kl": lambda x: math.exp(x), "jeffrey": lambda x: -x,
           "squared_hellinger": lambda x: -(1 - math.exp(x)), "pearson": lambda x: -x,
           "neyman": lambda x: -(1 - math.exp(x)), "js": lambda x: math.log1p(math.exp(-x)) - LN2,
           "tv": lambda x: -math.tanh(x) / 2}[div]
    conj = {"kl": lambda x: -math.exp(x - 1), "reverse_kl": lambda x: 1 + x,
            "jeffrey": lambda x: -(x + x * x / 4 + x ** 3 / 16),
            "squared_hellinger": lambda x: -(1 - math.exp(x)) / math.exp(x), "pearson": lambda x: -(x * x / 4 + x),
            "neyman": lambda x: -(2 - 2 * math.sqrt(1 - x)), "js": lambda x: -(x + math.log1p(math.exp(-x))) + LN2,
            "tv": lambda x: -math.tanh(x) / 2}[div]
    return act(x) - conj(y)


@pytest.mark.parametrize("name", sorted(losses.F_DIVERGENCES))
def test_flat_code_compat_matches_official_formulas(name):
    pe, pf = torch.tensor([0.6]), torch.tensor([0.3])
    want = _official_flat(0.6, 0.3, name)
    assert math.isclose(losses.flat_loss(pe, pf, name, code_compat=True).item(), want, rel_tol=1e-5, abs_tol=1e-6)
    paper = losses.flat_loss(pe, pf, name).item()
    # the paper form agrees with the code everywhere except the code's Neyman branch (f* applied to v)
    assert math.isclose(paper, want, rel_tol=1e-5, abs_tol=1e-6) == (name != "neyman")


def test_flat_unknown_divergence_names_choices():
    with pytest.raises(ValueError, match="kl"):
        losses.f_divergence_pairs("hellinger2")
