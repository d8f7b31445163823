"""CLIP-style models: transformers loading (tiny random CLIPConfig), TinyClip, deep visual prompt tuning."""

from __future__ import annotations

import sys

import pytest
import torch

from obliviate.models.clip import ClipClassifier, HFClip, PromptedVision, TinyClip, encode_image, load_clip


def save_tiny_hf_clip(path) -> None:
    """A random tiny CLIPModel + a real CLIP tokenizer (byte-level vocab, no merges) + image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from tokenizers import pre_tokenizers

    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    path.mkdir(parents=True, exist_ok=True)
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    cfg = CLIPConfig(text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                      vocab_size=len(vocab), max_position_embeddings=64,
                                      bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"]),
                     vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3,
                                        image_size=16, patch_size=4),
                     projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(path, safe_serialization=True)
    ip = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(path)


@pytest.fixture(scope="module")
def hf_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_clip")
    save_tiny_hf_clip(path)
    return load_clip(path)


def test_load_clip_matches_transformers_features(hf_clip):
    assert isinstance(hf_clip, HFClip) and hf_clip.processor is not None
    px = hf_clip.preprocess(torch.rand(3, 1, 8, 8))
    assert px.shape == (3, 3, 16, 16)
    with torch.no_grad():
        ref = hf_clip.model.get_image_features(pixel_values=px)
        ref = ref.pooler_output if hasattr(ref, "pooler_output") else ref
        torch.testing.assert_close(hf_clip.encode_image(px), ref)
        captions = ["a photo of the digit 1", "a photo of the digit 7"]
        tok = hf_clip.processor.tokenizer(captions, padding=True, return_tensors="pt")
        ref_t = hf_clip.model.get_text_features(**tok)
        ref_t = ref_t.pooler_output if hasattr(ref_t, "pooler_output") else ref_t
        torch.testing.assert_close(hf_clip.encode_text(captions), ref_t)


def test_load_clip_refuses_pickle_only_folder(tmp_path):
    with pytest.raises(OSError, match="safetensors"):
        load_clip(tmp_path / "missing")


def test_open_clip_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'obliviate\[clip\]'"):
        load_clip("ViT-B-16", backend="open_clip")
    with pytest.raises(ValueError, match="unknown CLIP backend"):
        load_clip("x", backend="jax")


@pytest.mark.parametrize("which", ["tiny", "hf"])
def test_deep_prompts_change_features_and_train_only_prompts(which, hf_clip):
    torch.manual_seed(0)
    clip = TinyClip(depth=3) if which == "tiny" else hf_clip
    x = torch.rand(4, 1, 8, 8) if which == "tiny" else hf_clip.preprocess(torch.rand(4, 1, 8, 8))
    with torch.no_grad():
        plain = encode_image(clip, x)
        no_prompt = PromptedVision(clip, n_tokens=8, n_layers=0)(x)
    torch.testing.assert_close(no_prompt, plain)  # zero prompted layers = the frozen tower
    enc = PromptedVision(clip, n_tokens=4, n_layers=9, init_std=0.5, generator=torch.Generator().manual_seed(0))
    assert enc.n_layers == 3  # clamped to the tower's depth
    f = enc(x)
    assert f.shape == plain.shape and not torch.allclose(f, plain)
    f.sum().backward()
    assert enc.prompts.grad is not None and enc.prompts.grad.abs().sum() > 0
    assert [p for p in enc.trainable_parameters()] == [enc.prompts]
    assert all(p.grad is None for p in clip.parameters())  # the tower is frozen


def test_clip_classifier_logits_are_scaled_cosines():
    torch.manual_seed(0)
    clip = TinyClip(depth=2)
    clf = ClipClassifier(clip, ["a photo of the digit 0", "a photo of the digit 1"])
    x = torch.rand(5, 1, 8, 8)
    logits = clf(x)
    assert logits.shape == (5, 2)
    assert logits.abs().max() <= clip.logit_scale_value() + 1e-4  # |cos| <= 1
    torch.testing.assert_close(clf.embed(x).norm(dim=-1), torch.ones(5))
