"""TrainConfig.gradient_checkpointing: the layers really recompute, and the losses and gradients are
the ones training without it gives (recomputation is exact, not an approximation)."""

import copy

import torch

from obliviate import registry
from obliviate.train.loop import TrainConfig, run_unlearning

STEPS = 3


def _checkpointing(model: torch.nn.Module) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def _run(model, tok, task, checkpointing: bool, **kw):
    """Train with SGD (an update linear in the gradient) and record every parameter's gradient and
    how often the first decoder layer's MLP computes (its ``forward`` is counted, not its forward
    hooks: transformers keeps hooks from firing again when a layer is recomputed)."""
    spec = registry.get("method", "graddiff").obj
    grads: dict[str, list[torch.Tensor]] = {}
    for name, p in model.named_parameters():
        p.register_post_accumulate_grad_hook(lambda p, name=name: grads.setdefault(name, []).append(p.grad.clone()))
    calls = {"layer0": 0}
    mlp = model.model.layers[0].mlp
    forward = mlp.forward

    def counted(*args, **kwargs):
        calls["layer0"] += 1
        return forward(*args, **kwargs)

    mlp.forward = counted
    cfg = TrainConfig(max_steps=STEPS, batch_size=4, grad_accum=1, lr=1e-2, optimizer="sgd", progress=False,
                      probe_every=0, gradient_checkpointing=checkpointing, **kw)
    out, log = run_unlearning(model, tok, task, spec, spec.make_config(), cfg)
    return out, log, grads, calls["layer0"]


def test_checkpointing_recomputes_and_gives_the_same_losses_and_gradients(tiny_model, tiny_tokenizer, tiny_task):
    plain, plain_log, plain_grads, plain_calls = _run(copy.deepcopy(tiny_model), tiny_tokenizer, tiny_task, False)
    ckpt, ckpt_log, ckpt_grads, ckpt_calls = _run(tiny_model, tiny_tokenizer, tiny_task, True)
    # graddiff runs the model on forget and on retain each step; checkpointing runs each layer again in backward.
    assert plain_calls == 2 * STEPS and ckpt_calls == 2 * plain_calls
    for a, b in zip(plain_log.history, ckpt_log.history, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-6
    assert len(plain_grads) == len(list(tiny_model.parameters())) and plain_grads.keys() == ckpt_grads.keys()
    for name, per_step in plain_grads.items():
        assert len(per_step) == len(ckpt_grads[name]) == STEPS
        for g, g2 in zip(per_step, ckpt_grads[name]):
            assert torch.allclose(g, g2, rtol=0, atol=1e-6), f"gradient of {name} differs"
    for (name, w), w2 in zip(plain.state_dict().items(), ckpt.state_dict().values()):
        assert torch.allclose(w, w2, rtol=0, atol=1e-6), f"{name} differs after training"
    assert not _checkpointing(ckpt), "the returned model no longer recomputes"
    assert not ckpt.get_input_embeddings()._forward_hooks, "nor keeps the embedding hook checkpointing added"


def test_checkpointing_with_lora_trains_the_same_adapters(tiny_model, tiny_tokenizer, tiny_task):
    lora = dict(lora=True, lora_r=4, lora_output="adapter")
    plain, plain_log, _, _ = _run(copy.deepcopy(tiny_model), tiny_tokenizer, tiny_task, False, **lora)
    ckpt, ckpt_log, _, ckpt_calls = _run(tiny_model, tiny_tokenizer, tiny_task, True, **lora)
    assert ckpt_calls == 4 * STEPS, "the frozen-embedding LoRA model recomputes its layers too"
    for a, b in zip(plain_log.history, ckpt_log.history, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-6
    adapters = {k: v for k, v in plain.state_dict().items() if "lora_B" in k}
    assert adapters and all(v.abs().sum() > 0 for v in adapters.values())
    for k, v in adapters.items():
        assert torch.allclose(v, ckpt.state_dict()[k], rtol=0, atol=1e-6), f"{k} differs"
    assert not _checkpointing(ckpt)
    emb = ckpt.get_input_embeddings()(torch.tensor([[1, 2, 3]]))
    assert not emb.requires_grad, "the input-require-grads hook is removed with the checkpointing"
