"""Values the TOFU presets take from OpenUnlearning and the methods' authors (the sources are in each
preset's notes): RMU's steered layer per model depth, SatImp's weights, FLAT's divergence and schedule,
PDU's multiplier settings and OpenUnlearning's one-epoch warm-up."""

from types import SimpleNamespace

import pytest
import torch

from obliviate.api import resolve_configs
from obliviate.methods import losses
from obliviate.methods.llm.rmu import RMUConfig, rmu_layer, rmu_params_regex
from obliviate.presets import load_preset

# Methods whose TOFU preset follows configs/experiment/unlearn/tofu/{default,idk}.yaml (warmup_epochs: 1.0)
OU_RECIPES = ["ga", "graddiff", "npo", "simnpo", "dpo", "idk", "rmu", "ceu", "wga", "undial", "pdu"]


def _model(depth: int):
    return SimpleNamespace(config=SimpleNamespace(num_hidden_layers=depth))


@pytest.mark.parametrize("depth", [16, 28, 32])  # Llama-3.2-1B, Llama-3.2-3B, Llama-3.1-8B / Llama-2-7B
def test_rmu_tofu_steers_layer_7_at_every_depth(depth):
    cfg, _ = resolve_configs("rmu", "tofu")
    assert rmu_layer(cfg, _model(depth)) == 7  # OpenUnlearning RMU.yaml module_regex model\.layers\.7
    assert rmu_params_regex(cfg, _model(depth)) == ".*"  # all parameters train on TOFU
    assert (cfg.steering_coeff, cfg.alpha, cfg.gamma, cfg.tokens) == (2.0, 1.0, 1.0, "answer")


def test_rmu_default_layer_is_relative_depth_and_the_tofu_layer_needs_eight_layers():
    assert rmu_layer(RMUConfig(), _model(32)) == 7  # WMDP recipe: layer 7 of 32
    assert rmu_layer(RMUConfig(), _model(16)) == 4  # the relative default differs from OpenUnlearning's 7
    cfg, _ = resolve_configs("rmu", "tofu")
    with pytest.raises(ValueError, match="outside"):
        rmu_layer(cfg, _model(4))


def test_satimp_authors_weights_in_defaults_and_tofu_preset():
    cfg, train = resolve_configs("satimp", "tofu")
    assert (cfg.beta1, cfg.beta2, cfg.gamma, cfg.alpha) == (5.0, 0.1, 1.0, 0.1)  # forget:retain = 10:1
    assert cfg.gamma / cfg.alpha == pytest.approx(10.0)
    assert (train.lr, train.epochs, train.batch_size * train.grad_accum, train.weight_decay) == (1e-5, 5, 16, 0.0)
    # known answer at the authors' exponents: p = 0.5 -> 0.5^5 · 0.5^0.1 = 0.029157...
    w = losses.satimp_token_weights(torch.log(torch.tensor([0.5, 0.9])), cfg.beta1, cfg.beta2)
    assert w.tolist() == pytest.approx([0.5 ** 5 * 0.5 ** 0.1, 0.9 ** 5 * 0.1 ** 0.1], rel=1e-6)


def test_flat_tofu_is_the_official_config():
    cfg, train = resolve_configs("flat", "tofu")
    assert cfg.divergence == "tv" and not cfg.code_compat  # config/forget.yaml: variants Total-Variation
    assert (train.lr, train.epochs, train.batch_size, train.grad_accum, train.weight_decay) == (1e-5, 5, 16, 4, 0.01)


def test_pdu_tofu_is_the_published_recipe():
    cfg, train = resolve_configs("pdu", "tofu")
    assert (cfg.gamma, cfg.alpha, cfg.retain_eps, cfg.dual_step_size, cfg.dual_warmup_epochs) == (1.0, 100.0, 0.3,
                                                                                                   5.0, 5.0)
    assert cfg.primal_dual and train.batch_size * train.grad_accum == 128 and train.grad_accum == 4


@pytest.mark.parametrize("method", OU_RECIPES)
def test_openunlearning_tofu_schedule(method):
    _, train = resolve_configs(method, "tofu")
    assert train.warmup_epochs == 1.0 and train.warmup_steps == 0
    assert train.weight_decay == 0.01 and train.lr_scheduler == "linear"
    assert "warm-up 1 epoch" in load_preset("tofu", method)["notes"]
