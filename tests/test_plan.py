"""The memory plan (obliviate.plan): parameter counts against real models and published sizes,
hand-computed byte counts, activations against the bytes autograd really saves, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, \
    Qwen2ForCausalLM

from obliviate.cli import main
from obliviate.methods import losses
from obliviate.plan import Architecture, activation_bytes, plan_memory

CONFIGS = Path(__file__).resolve().parents[1] / "benchmarks" / "configs"
SMALL = dict(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=160)


@pytest.mark.parametrize("make", [
    lambda: LlamaForCausalLM(LlamaConfig(**SMALL, tie_word_embeddings=False)),
    lambda: LlamaForCausalLM(LlamaConfig(**SMALL, tie_word_embeddings=True)),
    lambda: LlamaForCausalLM(LlamaConfig(**SMALL, attention_bias=True, mlp_bias=True, head_dim=24)),
    lambda: MistralForCausalLM(MistralConfig(**SMALL, head_dim=8, tie_word_embeddings=False)),
    lambda: Qwen2ForCausalLM(Qwen2Config(**SMALL, tie_word_embeddings=True)),
], ids=["llama", "llama-tied", "llama-biases-head_dim", "mistral", "qwen2"])
def test_parameter_count_equals_a_real_model_built_from_the_config(make):
    model = make()
    assert Architecture.from_config(model.config).param_count() == sum(p.numel() for p in model.parameters())


def test_lora_trainable_count_equals_peft_on_the_default_and_given_layers():
    from obliviate.models.lora import wrap_lora

    for target in ((), ("q_proj", "k_proj", "o_proj", "down_proj")):
        model = LlamaForCausalLM(LlamaConfig(**SMALL))
        peft_model = wrap_lora(model, r=4, alpha=8, dropout=0.0, target=target)
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        plan = plan_memory(model.config, "ga", lora=True, lora_r=4, lora_target=target)
        assert plan.trainable == trainable
        assert plan.lora_targets == (target or ("q_proj", "v_proj"))  # peft's default for llama


def test_published_llama_sizes_from_the_benchmark_configs():
    # The parameter counts Meta publishes (and safetensors headers give) for these checkpoints.
    expected = {"llama-3.2-1b": 1_235_814_400, "llama-2-7b": 6_738_415_616, "llama-3-70b": 70_553_706_496}
    for name, n in expected.items():
        assert plan_memory(str(CONFIGS / f"{name}.json"), "ga").params == n


def test_hand_computed_small_config():
    # H=8, L=1, A=2 (d=4), K=1, I=16, V=10, tied. Per layer: q 8*8 + k,v 2*(8*4) + o 8*8 = 192,
    # MLP 3*8*16 = 384, norms 16 -> 592; outside: embedding 80 + final norm 8 -> P = 680.
    cfg = LlamaConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                      intermediate_size=16, tie_word_embeddings=True)
    arch = Architecture.from_config(cfg)
    assert (arch.layer_params(), arch.param_count()) == (592, 680)
    # GA (forget stream only, no reference), float32, AdamW, B=1, S=4:
    p = plan_memory(cfg, "ga", dtype="float32", batch_size=1, max_length=4)
    assert (p.weights, p.gradients, p.optimizer, p.reference, p.ddp_buckets) == (2720, 2720, 5440, 0, 0)
    # Activations per token: norms 2*(32 + 64 + 4) = 200, SDPA 4*4*8 + 8 = 136, MLP 4*4*16 = 256 -> 592;
    # x 4 tokens + mask 1*16*4 = 2432 per layer; outside (8 + 32 + 64 + 4)*4 = 432; rotary 2*4*4*4 = 128;
    # head (40 + 8)*3 + 4 = 148.
    assert p.activations == 2432 + 432 + 128 + 148
    assert p.transient == (8 + 4) * 1 * 4 * 10
    # NPO: a reference copy and two streams (forget, retain); bfloat16 halves weights and the rest.
    q = plan_memory(cfg, "npo", dtype="bfloat16", batch_size=1, max_length=4)
    assert (q.weights, q.reference, q.grad_streams) == (1360, 1360, 2)
    # 8 processes: DDP keeps whole copies plus a bucket; ZeRO-3 shards and adds fp32 master + moments.
    d = plan_memory(cfg, "npo", dtype="bfloat16", num_processes=8)
    assert (d.weights, d.ddp_buckets) == (1360, 1360)
    z = plan_memory(cfg, "npo", dtype="bfloat16", num_processes=8, sharding="zero3")
    assert (z.weights, z.gradients, z.optimizer, z.reference) == (1360 // 8, 1360 // 8, 12 * 680 // 8, 1360 // 8)
    assert z.gathered == (3 * 592 + 88) * 2


def test_reference_model_comes_from_the_method_registration():
    cfg = LlamaConfig(**SMALL)
    assert plan_memory(cfg, "npo").reference_model and plan_memory(cfg, "dpo").reference_model
    assert not plan_memory(cfg, "ga").reference_model
    assert not plan_memory(cfg, "graddiff").reference_model
    kl = plan_memory(cfg, "graddiff", method_overrides={"retain_loss": "kl"})
    assert kl.reference_model and kl.reference == kl.weights
    lora = plan_memory(cfg, "npo", lora=True)
    assert lora.reference_model and lora.reference == 0  # the adapter-disabled base serves as reference


def _saved_bytes(model, batch: int, seq: int) -> int:
    """Bytes autograd keeps for backward in one forward + token loss (parameters excluded, each
    storage once), with one padded row as the training loop's batches have."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = s.nbytes()
        return t

    ids = torch.randint(0, model.config.vocab_size, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, -3:] = 0
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses.nll(model(input_ids=ids, attention_mask=mask).logits, ids)
    return sum(seen.values())


ALL_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mode", ["full", "full+ckpt", "lora", "lora+ckpt", "lora-all"])
def test_activation_formula_equals_the_bytes_autograd_saves(dtype, mode):
    from obliviate.models.lora import wrap_lora
    from obliviate.train.loop import _activation_checkpointing

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMALL, tie_word_embeddings=False)).to(dtype)
    lora, ckpt = mode.startswith("lora"), mode.endswith("ckpt")
    targets = ALL_LINEARS if mode == "lora-all" else ("q_proj", "v_proj")
    if lora:
        model = wrap_lora(model, r=4, alpha=8, dropout=0.0, target=targets if mode == "lora-all" else ())
    if ckpt:
        _activation_checkpointing(model, True, frozen_embeddings=lora)
    model.train()
    arch = Architecture.from_config(model.config)
    for batch, seq in ((2, 16), (3, 24)):
        expected, _ = activation_bytes(arch, batch, seq, 4 if dtype == torch.float32 else 2, lora=lora,
                                       lora_targets=targets, lora_r=4, checkpointing=ckpt)
        assert _saved_bytes(model, batch, seq) == expected


def test_cli_prints_the_plan_as_users_type_it(capsys):
    main(["plan", "--model", str(CONFIGS / "llama-2-7b.json"), "--method", "npo", "--lora", "--num_processes", "8",
          "--zero3"])
    out = capsys.readouterr().out
    assert "6.738B parameters" in out and "LoRA r=8 on q_proj, v_proj" in out and "zero3" in out
    assert "reference model: yes (the base with adapters off)" in out and "activations" in out
    main(["plan", "--model", str(CONFIGS / "llama-3.2-1b.json"), "--method", "graddiff", "--set", "retain_loss=kl",
          "--json", "--batch_size", "2", "--max_length", "128"])
    rec = json.loads(capsys.readouterr().out)
    assert rec["reference_model"] and rec["reference"] == rec["weights"] == 1_235_814_400 * 2
    assert rec["batch_size"] == 2 and rec["total"] > rec["total_checkpointed"]


def test_cli_reads_a_model_folder(tmp_path, capsys):
    LlamaConfig(**SMALL).save_pretrained(tmp_path)
    main(["plan", "--model", str(tmp_path), "--method", "ga", "--json"])
    assert json.loads(capsys.readouterr().out)["params"] == Architecture.from_config(LlamaConfig(**SMALL)).param_count()


@pytest.mark.parametrize("args, message", [
    (["--model", "missing/config.json", "--method", "npo"], "no such file or folder"),
    (["--model", "CFG", "--method", "npoo"], "unknown method 'npoo'"),
    (["--model", "CFG", "--method", "retrain"], "not a gradient method"),
    (["--model", "CFG", "--method", "npo", "--zero3"], "--num_processes"),
    (["--model", "CFG", "--method", "npo", "--num_processes", "2", "--fsdp", "--zero3"], "choose one sharding"),
    (["--model", "CFG", "--method", "npo", "--lora", "--lora_target", "qproj"], "not a projection"),
    (["--model", "GPT2", "--method", "npo"], "model_type 'gpt2'"),
    (["--model", "EMPTY", "--method", "npo"], "no config.json"),
])
def test_bad_inputs_exit_2_with_a_clear_message(tmp_path, args, message):
    from transformers import GPT2Config

    (tmp_path / "empty").mkdir()
    GPT2Config(n_layer=1).save_pretrained(tmp_path / "gpt2")
    subs = {"CFG": str(CONFIGS / "llama-3.2-1b.json"), "GPT2": str(tmp_path / "gpt2"), "EMPTY": str(tmp_path / "empty"),
            "missing/config.json": str(tmp_path / "missing" / "config.json")}
    out = subprocess.run([sys.executable, "-m", "obliviate.cli", "plan", *[subs.get(a, a) for a in args]],
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
