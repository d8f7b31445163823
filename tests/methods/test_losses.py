"""Known-answer tests for the shared losses (hand-computed on tiny logits)."""

import math

import torch

from obliviate.methods import losses


def _logits_for(probs_rows):
    return torch.log(torch.tensor(probs_rows, dtype=torch.float32))


def test_token_logprobs_answer_tokens_only():
    # vocab 3, sequence of 3 positions; labels: prompt(-100), answer token 1, answer token 2
    logits = _logits_for([[[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]]])
    labels = torch.tensor([[-100, 1, 2]])
    lp, mask = losses.token_logprobs(logits, labels)
    assert mask.tolist() == [[True, True]]
    assert torch.allclose(lp, torch.log(torch.tensor([[0.5, 0.8]])), atol=1e-6)
    assert math.isclose(losses.sequence_logprob(logits, labels).item(), math.log(0.4), rel_tol=1e-5)
    assert math.isclose(losses.mean_nll_per_example(logits, labels).item(), -math.log(0.4) / 2, rel_tol=1e-5)
    assert math.isclose(losses.nll(logits, labels).item(), -math.log(0.4) / 2, rel_tol=1e-5)


def test_npo_loss_known_value():
    # log ratio = -1, beta = 0.5: -(2/0.5) log sigmoid(0.5) = 4 * log(1 + e^-0.5)
    got = losses.npo_loss(torch.tensor([-3.0]), torch.tensor([-2.0]), beta=0.5).item()
    assert math.isclose(got, 4 * math.log1p(math.exp(-0.5)), rel_tol=1e-6)
    # equals (2/β) log(1 + (π/π_ref)^β)
    assert math.isclose(got, 4 * math.log(1 + math.exp(-1) ** 0.5), rel_tol=1e-6)


def test_simnpo_loss_known_value():
    got = losses.simnpo_loss(torch.tensor([2.0]), beta=1.0, gamma=0.5).item()
    assert math.isclose(got, -2 * math.log(1 / (1 + math.exp(-1.5))), rel_tol=1e-6)


def test_kl_zero_for_identical_and_masks_prompt():
    logits = torch.randn(2, 4, 5)
    labels = torch.tensor([[-100, -100, 1, 2], [-100, 3, 3, -100]])
    assert losses.kl_to_reference(logits, logits.clone(), labels).item() < 1e-6
    # change the reference only at a prompt position (shifted index 0 predicts label[1]=-100): KL unchanged
    ref = logits.clone()
    ref[0, 0] += 5.0
    assert losses.kl_to_reference(logits, ref, labels).item() < 1e-6


def test_kl_known_value():
    p = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]])
    q = torch.tensor([[[0.9, 0.1], [0.5, 0.5]]])
    labels = torch.tensor([[-100, 0]])
    want = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    got = losses.kl_to_reference(torch.log(p), torch.log(q), labels).item()
    assert math.isclose(got, want, rel_tol=1e-5)


def test_dpo_loss_known_value():
    got = losses.dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), torch.tensor([-1.0]), 0.1)
    assert math.isclose(got.item(), -20 * math.log(1 / (1 + math.exp(-0.2))), rel_tol=1e-5)
