"""LoRA through peft: per-architecture default targets, overrides, clear errors, and adapters that
reload from any working directory with the same logits."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from obliviate import registry
from obliviate.models.loading import load_causal_lm, save_model_atomic
from obliviate.models.lora import portable_base_name, save_adapter_atomic, wrap_lora
from obliviate.train.loop import TrainConfig, run_unlearning

# peft's documented defaults (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING), written out
# here so the test notices if obliviate ever stops deferring to them.
DEFAULT_TARGETS = {"llama": {"q_proj", "v_proj"}, "gpt2": {"c_attn"}, "qwen2": {"q_proj", "v_proj"}}
N_LAYERS = 2


class _MysteryConfig(LlamaConfig):
    """A Llama under a model type peft has never heard of."""

    model_type = "obliviate_mystery"


def _tiny(kind: str, tok) -> torch.nn.Module:
    ids = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
               eos_token_id=tok.eos_token_id)
    shape = dict(hidden_size=32, num_hidden_layers=N_LAYERS, num_attention_heads=2, num_key_value_heads=2,
                 intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=N_LAYERS, n_head=2, n_positions=128, **ids))
    if kind == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**shape, **ids))
    config_cls = _MysteryConfig if kind == "mystery" else LlamaConfig
    return LlamaForCausalLM(config_cls(**shape, tie_word_embeddings=False, **ids))


def _adapted(model: torch.nn.Module) -> set[str]:
    return {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")}


def _cfg(**kw) -> TrainConfig:
    base = dict(max_steps=3, batch_size=4, grad_accum=1, lr=1e-2, progress=False, probe_every=0, lora=True, lora_r=4)
    return TrainConfig(**{**base, **kw})


def _ga():
    spec = registry.get("method", "ga").obj
    return spec, spec.make_config()


@pytest.mark.parametrize("kind", sorted(DEFAULT_TARGETS))
def test_default_targets_are_peft_s_per_architecture(kind, tiny_tokenizer):
    peft_model = wrap_lora(_tiny(kind, tiny_tokenizer), r=4, alpha=8, dropout=0.0)
    assert _adapted(peft_model) == DEFAULT_TARGETS[kind]
    n = sum(hasattr(m, "lora_A") for m in peft_model.modules())
    assert n == N_LAYERS * len(DEFAULT_TARGETS[kind])


@pytest.mark.parametrize("kind", sorted(DEFAULT_TARGETS))
def test_lora_unlearning_trains_only_adapter_weights(kind, tiny_tokenizer, tiny_task):
    spec, mcfg = _ga()
    model = _tiny(kind, tiny_tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model, log = run_unlearning(model, tiny_tokenizer, tiny_task, spec, mcfg, _cfg(lora_output="adapter"))
    assert isinstance(peft_model, PeftModel) and log.steps == 3
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * N_LAYERS * len(DEFAULT_TARGETS[kind]) and all("lora_" in n for n in trainable)
    sd = peft_model.get_base_model().state_dict()
    lora_b = [v for k, v in sd.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b), "every adapter moved off its zero init"
    base = {k.replace(".base_layer", ""): v for k, v in sd.items() if "lora_" not in k}
    assert set(base) == set(before) and all(torch.equal(base[k], v) for k, v in before.items()), \
        "the base weights did not move"

    merged_model, _ = run_unlearning(_tiny(kind, tiny_tokenizer), tiny_tokenizer, tiny_task, spec, mcfg, _cfg())
    sd = merged_model.state_dict()
    assert not isinstance(merged_model, PeftModel) and set(sd) == set(before)
    changed = {k.rsplit(".", 2)[-2] for k in sd if not torch.equal(sd[k], before[k])}
    assert changed == DEFAULT_TARGETS[kind], "merging changed exactly the adapted layers"


def test_merge_lora_false_from_older_presets_still_means_adapter_output(tiny_tokenizer, tiny_task):
    spec, mcfg = _ga()
    out, _ = run_unlearning(_tiny("llama", tiny_tokenizer), tiny_tokenizer, tiny_task, spec, mcfg,
                            _cfg(max_steps=1, merge_lora=False))
    assert isinstance(out, PeftModel)


def test_lora_target_overrides_the_default(tiny_tokenizer, tiny_task):
    spec, mcfg = _ga()
    out, _ = run_unlearning(_tiny("llama", tiny_tokenizer), tiny_tokenizer, tiny_task, spec, mcfg,
                            _cfg(max_steps=1, lora_output="adapter", lora_target=("o_proj", "down_proj")))
    assert _adapted(out) == {"o_proj", "down_proj"}


def test_a_target_that_matches_no_layer_is_refused_with_the_layer_names(tiny_tokenizer):
    with pytest.raises(ValueError, match=r"'q_prj' matches no layer.*q_proj"):
        wrap_lora(_tiny("llama", tiny_tokenizer), 4, 8, 0.0, target=("q_prj", "v_proj"))


def test_an_architecture_without_a_peft_default_asks_for_lora_target(tiny_tokenizer, tiny_task):
    spec, mcfg = _ga()
    with pytest.raises(ValueError, match=r"no default LoRA target layers for model type 'obliviate_mystery'; "
                                         r"set lora_target.*q_proj"):
        run_unlearning(_tiny("mystery", tiny_tokenizer), tiny_tokenizer, tiny_task, spec, mcfg, _cfg())
    out, _ = run_unlearning(_tiny("mystery", tiny_tokenizer), tiny_tokenizer, tiny_task, spec, mcfg,
                            _cfg(max_steps=1, lora_output="adapter", lora_target=("q_proj",)))
    assert _adapted(out) == {"q_proj"}


def test_an_adapter_reloads_from_another_directory_with_identical_logits(tmp_path, monkeypatch, tiny_tokenizer,
                                                                         tiny_task):
    save_model_atomic(_tiny("llama", tiny_tokenizer), tiny_tokenizer, tmp_path / "base")
    monkeypatch.chdir(tmp_path)
    base, tok = load_causal_lm("base")  # a relative path: what peft records as the base
    spec, mcfg = _ga()
    peft_model, _ = run_unlearning(base, tok, tiny_task, spec, mcfg, _cfg(lora_output="adapter"))
    assert peft_model.peft_config["default"].base_model_name_or_path == "base"
    out = save_adapter_atomic(peft_model, tok, "adapter")
    assert {p.name for p in out.iterdir()} >= {"adapter_model.safetensors", "adapter_config.json",
                                               "tokenizer.json"}
    assert not (out / "model.safetensors").exists(), "an adapter folder holds the adapter, not a model copy"
    recorded = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded == str((tmp_path / "base").resolve())

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    ids = torch.tensor([tok("Where was writer 3 born?")["input_ids"]])
    with torch.no_grad():
        expected = peft_model.eval()(ids).logits
        reloaded, _ = load_causal_lm(tmp_path / "adapter")
        assert isinstance(reloaded, PeftModel)
        assert torch.equal(reloaded(ids).logits, expected)
        merged, _ = load_causal_lm(tmp_path / "adapter", merge_adapter=True)
        assert not isinstance(merged, PeftModel)
        assert torch.allclose(merged(ids).logits, expected, atol=1e-5)
        plain, _ = load_causal_lm(tmp_path / "base")
        assert not torch.allclose(plain(ids).logits, expected, atol=1e-3), "the adapter changes the model"


def test_save_model_atomic_saves_a_peft_model_as_its_adapter(tmp_path, tiny_tokenizer):
    save_model_atomic(_tiny("gpt2", tiny_tokenizer), tiny_tokenizer, tmp_path / "base")
    base, tok = load_causal_lm(tmp_path / "base")
    out = save_model_atomic(wrap_lora(base, 4, 8, 0.0), tok, tmp_path / "run", extra_files={"run.json": "{}"})
    assert (out / "adapter_config.json").is_file() and (out / "run.json").read_text() == "{}"
    assert _adapted(load_causal_lm(out)[0]) == {"c_attn"}


def test_an_adapter_names_a_hub_base_by_its_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable_base_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    (tmp_path / "HuggingFaceTB" / "local").mkdir(parents=True)
    assert portable_base_name("HuggingFaceTB/local") == str(tmp_path.resolve() / "HuggingFaceTB" / "local")
