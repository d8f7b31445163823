"""`warmup_epochs` (OpenUnlearning's custom argument) becomes int(epochs x forget items // effective batch)
warm-up steps of the learning-rate schedule."""

import pytest
import torch

from obliviate.api import unlearn
from obliviate.train.loop import TrainConfig

BASE = {"max_steps": 4, "batch_size": 2, "grad_accum": 2, "lr": 1e-2, "progress": False, "probe_every": 0}


def _weights(model, tokenizer, task, **train):
    res = unlearn(model, tokenizer, task, method="ga", train={**BASE, **train})
    return torch.cat([p.detach().flatten() for p in res.model.parameters()])


def test_warmup_epochs_equals_its_step_count(tiny_model, tiny_tokenizer, tiny_task):
    # 8 forget items // (2 x 2) = 2 warm-up steps per epoch
    by_epochs = _weights(tiny_model, tiny_tokenizer, tiny_task, warmup_epochs=1.0)
    by_steps = _weights(tiny_model, tiny_tokenizer, tiny_task, warmup_steps=2)
    half = _weights(tiny_model, tiny_tokenizer, tiny_task, warmup_epochs=0.5)  # int(4 // 4) = 1 step
    none = _weights(tiny_model, tiny_tokenizer, tiny_task)
    assert torch.equal(by_epochs, by_steps)
    assert torch.equal(half, _weights(tiny_model, tiny_tokenizer, tiny_task, warmup_steps=1))
    assert not torch.allclose(by_epochs, none) and not torch.allclose(by_epochs, half)


def test_warmup_epochs_range_checked():
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig(warmup_epochs=-1.0)
