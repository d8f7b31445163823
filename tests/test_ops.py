"""Known-answer tests for the token-level math shared by scoring and training (`obliviate.ops`)."""

import math

import torch

from obliviate import ops
from obliviate.methods import losses


def test_shift_aligns_each_position_with_the_next_label():
    logits = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    labels = torch.tensor([[-100, -100, 1, 2], [-100, 0, -100, -100]])
    lg, lb, mask = ops.shift(logits, labels)
    assert torch.equal(lg, logits[:, :3]) and lb.tolist() == [[-100, 1, 2], [0, -100, -100]]
    assert mask.tolist() == [[False, True, True], [True, False, False]]


def test_log_probs_and_nll_on_a_padded_batch():
    # vocab 2; row 0 answers [1, 0] with p = 0.75, 0.5; row 1 answers [1] with p = 0.9, then padding.
    probs = torch.tensor([[[0.25, 0.75], [0.5, 0.5], [0.3, 0.7]],
                          [[0.1, 0.9], [0.6, 0.4], [0.5, 0.5]]])
    labels = torch.tensor([[-100, 1, 0], [-100, 1, -100]])
    logits = torch.log(probs)
    lp, mask = ops.token_logprobs(logits, labels)
    assert mask.tolist() == [[True, True], [True, False]]
    want = torch.log(torch.tensor([[0.75, 0.5], [0.9, 1.0]]))  # masked positions read 0 = log 1
    assert torch.allclose(lp, want, atol=1e-6)
    seq = ops.sequence_logprob(logits, labels)
    assert torch.allclose(seq, torch.tensor([math.log(0.375), math.log(0.9)]), atol=1e-6)
    per_example = ops.mean_nll_per_example(logits, labels)
    assert torch.allclose(per_example, torch.tensor([-math.log(0.375) / 2, -math.log(0.9)]), atol=1e-6)
    # the batch NLL averages over the 3 answer tokens of the batch, not per example
    assert math.isclose(ops.nll(logits, labels).item(), -math.log(0.375 * 0.9) / 3, rel_tol=1e-6)


def test_target_logprobs_gathers_at_the_labels():
    logp = torch.log(torch.tensor([[[0.2, 0.8], [0.6, 0.4]]]))
    got = ops.target_logprobs(logp, torch.tensor([[1, -100]]))
    assert torch.allclose(got, torch.log(torch.tensor([[0.8, 0.6]])))  # -100 reads token 0


def test_losses_reexports_the_shared_ops():
    for name in ("shift", "token_logprobs", "sequence_logprob", "mean_nll_per_example", "nll"):
        assert getattr(losses, name) is getattr(ops, name), name
