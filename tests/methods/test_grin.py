"""GRIN: gradient ratio, exact top-fraction mask, noise only on the mask, masked fine-tuning."""

import torch

from obliviate.api import unlearn
from obliviate.methods.llm.grin import gradient_ratio, inject_noise, top_fraction_mask


def test_gradient_ratio_is_elementwise():
    gf = {"w": torch.tensor([[1.0, -2.0], [0.0, 4.0]])}
    gr = {"w": torch.tensor([[1.0, 1.0], [-3.0, 0.0]])}
    r = gradient_ratio(gf, gr, eps=1.0)
    assert torch.allclose(r["w"], torch.tensor([[0.5, 1.0], [0.0, 4.0]]))


def test_top_fraction_mask_keeps_exactly_the_top_weights():
    scores = {"a": torch.tensor([0.1, 5.0, 0.3]), "b": torch.tensor([[4.0, 0.2], [0.0, 3.0]])}
    m = top_fraction_mask(scores, 3 / 7)
    assert m["a"].tolist() == [False, True, False]
    assert m["b"].tolist() == [[True, False], [False, True]]
    assert sum(int(v.sum()) for v in top_fraction_mask(scores, 0.5).values()) == round(0.5 * 7)


def test_noise_only_touches_masked_weights():
    lin = torch.nn.Linear(4, 3)
    before = lin.weight.detach().clone()
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0, 1] = mask[2, 3] = True
    inject_noise(lin, {"weight": mask}, scale=0.5, seed=0)
    changed = lin.weight.detach() != before
    assert torch.equal(changed, mask)


def test_grin_updates_only_masked_weights_and_leaves_no_hooks(tiny_model, tiny_tokenizer, tiny_task):
    frac = 0.02
    res = unlearn(tiny_model, tiny_tokenizer, tiny_task, method="grin", topk_frac=frac,
                  train={"max_steps": 4, "batch_size": 4, "grad_accum": 1, "lr": 1e-3, "progress": False,
                         "weight_decay": 0.1})
    before = dict(tiny_model.named_parameters())
    n_changed = sum(int((p.detach() != before[n].detach()).sum()) for n, p in res.model.named_parameters())
    n_total = sum(p.numel() for p in tiny_model.parameters())
    assert 0 < n_changed <= round(frac * n_total)
    # the masks were run-only: the returned model trains every weight again
    assert all(p.requires_grad for p in res.model.parameters())
    assert not res.model.__dict__.get("_obliviate_grad_hooks")
    res.model(input_ids=torch.tensor([[1, 2, 3]])).logits.logsumexp(-1).sum().backward()
    n_grad = sum(int((p.grad != 0).sum()) for p in res.model.parameters() if p.grad is not None)
    assert n_grad > 10 * round(frac * n_total), "gradients are still masked after the run"
