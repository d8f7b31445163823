import pytest
import torch

from obliviate.models.loading import _drop_gguf_marker, load_causal_lm, save_model_atomic


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
