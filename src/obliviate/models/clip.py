"""CLIP-style dual encoders and deep vision prompt tuning.

Three ways to get a CLIP-style model, all exposing the same small surface that prompt tuning
and the vision-language methods (ADU) use:

- ``TinyClip``: the built-in ViT-style dual encoder (patch-2 ViT on 8x8 images, a small caption
  encoder), trained from scratch by the ``domains`` benchmark;
- ``load_clip(path_or_hub_id)``: a pretrained ``transformers.CLIPModel`` + ``CLIPProcessor``
  (safetensors only), wrapped as ``HFClip``;
- ``load_clip(name, backend="open_clip", pretrained=...)``: an ``open_clip`` model (optional
  extra: ``pip install 'obliviate[clip]'``), wrapped as ``OpenClip``.

The shared surface (duck-typed, see ``ClipLike``): ``vision_tokens(x)`` is the token sequence
fed to the first transformer block (CLS first, then patches), ``vision_blocks()`` the blocks as
callables ``h -> h``, ``vision_pool(h)`` the image feature from the last hidden states,
``encode_text(captions)`` the caption features, ``logit_scale_value()`` CLIP's temperature
exp(t), and ``width`` the token width. ``encode_image(x)`` = pool(blocks(tokens(x))).

``PromptedVision`` implements deep visual prompt tuning (Jia et al., "Visual Prompt Tuning",
ECCV 2022, arXiv 2203.12119, VPT-deep): ``n_tokens`` learnable tokens are inserted after CLS in
each of the first ``n_layers`` blocks (a block's output prompt tokens are replaced by the next
layer's learnable ones); the tower itself is frozen. An optional ``prompt_generator`` (ADU's
InstaPG) makes the prompts of later layers depend on the image.
"""

from __future__ import annotations

import copy
import inspect
import math
from pathlib import Path
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ClipLike(Protocol):
    """What prompt tuning needs from a CLIP-style model (TinyClip, HFClip, OpenClip)."""

    width: int

    def vision_tokens(self, x: torch.Tensor) -> torch.Tensor: ...
    def vision_blocks(self) -> Sequence[Callable[[torch.Tensor], torch.Tensor]]: ...
    def vision_pool(self, h: torch.Tensor) -> torch.Tensor: ...
    def encode_text(self, captions: Sequence[str]) -> torch.Tensor: ...
    def logit_scale_value(self) -> torch.Tensor: ...


def encode_image(clip: ClipLike, x: torch.Tensor) -> torch.Tensor:
    """Unprompted image features: pool(blocks(tokens(x)))."""
    h = clip.vision_tokens(x)
    for block in clip.vision_blocks():
        h = block(h)
    return clip.vision_pool(h)


def caption(class_name: str, template: str = "a photo of the digit {}") -> str:
    return template.format(class_name)


# ---- the built-in dual encoder ----------------------------------------------------------------
WORDS = ("<pad>", "<unk>", "a", "an", "photo", "of", "the", "digit", "number", "picture", *[str(i) for i in range(10)])


class TinyClip(nn.Module):
    """A small CLIP-style dual encoder (the spec's toy CLIP, §10).

    Vision: 8x8 grey image -> 2x2 patches (16 tokens) + CLS, width 32, ``depth`` pre-norm
    transformer blocks, CLS -> LayerNorm -> projection. Text: whitespace tokens over a fixed word
    list, one transformer block, mean pool -> LayerNorm -> projection. Logits = exp(t)·cos.
    """

    def __init__(self, width: int = 32, depth: int = 4, heads: int = 4, embed_dim: int = 32, image_size: int = 8,
                 patch: int = 2, channels: int = 1, max_words: int = 8):
        super().__init__()
        self.width, self.max_words = width, max_words
        n_patches = (image_size // patch) ** 2
        self.patch_embed = nn.Conv2d(channels, width, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, width) * 0.02)
        self.ln_pre = nn.LayerNorm(width)

        def block() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, activation="gelu",
                                              batch_first=True, norm_first=True)

        self.blocks = nn.ModuleList(block() for _ in range(depth))
        self.ln_post = nn.LayerNorm(width)
        self.visual_proj = nn.Linear(width, embed_dim, bias=False)
        self.word_embed = nn.Embedding(len(WORDS), width)
        self.word_pos = nn.Parameter(torch.randn(1, max_words, width) * 0.02)
        self.text_block = block()
        self.ln_text = nn.LayerNorm(width)
        self.text_proj = nn.Linear(width, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature

    # vision surface
    def vision_tokens(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_embed(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(len(x), -1, -1), p], 1) + self.pos
        return self.ln_pre(h)

    def vision_blocks(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return list(self.blocks)

    def vision_pool(self, h: torch.Tensor) -> torch.Tensor:
        return self.visual_proj(self.ln_post(h[:, 0]))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return encode_image(self, x)

    # text surface
    def tokenize(self, captions: Sequence[str]) -> torch.Tensor:
        ids = torch.zeros(len(captions), self.max_words, dtype=torch.long)
        for i, c in enumerate(captions):
            words = c.lower().split()[: self.max_words]
            ids[i, : len(words)] = torch.tensor([WORDS.index(w) if w in WORDS else 1 for w in words])
        return ids

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        ids = self.tokenize(captions).to(self.word_pos.device)
        pad = ids == 0
        h = self.text_block(self.word_embed(ids) + self.word_pos, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.text_proj(self.ln_text((h * keep).sum(1) / keep.sum(1).clamp_min(1)))

    def logit_scale_value(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=100.0)  # CLIP clips the temperature at 100


# ---- transformers and open_clip models ---------------------------------------------------------
class HFClip(nn.Module):
    """A ``transformers.CLIPModel`` (+ its processor) behind the ``ClipLike`` surface."""

    def __init__(self, model: nn.Module, processor=None):
        super().__init__()
        self.model, self.processor = model, processor
        self.width = model.config.vision_config.hidden_size
        vm = model.vision_model
        params = inspect.signature(type(vm.encoder.layers[0]).forward).parameters
        # transformers < 5 takes (hidden, attention_mask, causal_attention_mask) and returns a tuple
        self._layer_kwargs = {"attention_mask": None}
        if "causal_attention_mask" in params:
            self._layer_kwargs["causal_attention_mask"] = None

    def vision_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        vm = self.model.vision_model
        return vm.pre_layrnorm(vm.embeddings(pixel_values))

    def vision_blocks(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        def run(layer):
            def f(h):
                out = layer(h, **self._layer_kwargs)
                return out[0] if isinstance(out, tuple) else out
            return f
        return [run(layer) for layer in self.model.vision_model.encoder.layers]

    def vision_pool(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.visual_projection(self.model.vision_model.post_layernorm(h[:, 0]))

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return encode_image(self, pixel_values)

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        if self.processor is None:
            raise ValueError("this CLIP model was loaded without a processor/tokenizer; load it with load_clip(path) "
                             "from a folder that holds the tokenizer files too")
        tok = self.processor.tokenizer(list(captions), padding=True, return_tensors="pt")
        out = self.model.get_text_features(**{k: v.to(self.model.device) for k, v in tok.items()})
        return out.pooler_output if hasattr(out, "pooler_output") else out  # transformers 5 returns an output

    def logit_scale_value(self) -> torch.Tensor:
        return self.model.logit_scale.exp().clamp(max=100.0)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] (C = 1 or 3) -> ``pixel_values`` through the CLIP image processor."""
        if self.processor is None:
            raise ValueError("no CLIP processor was loaded with this model")
        imgs = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        arrays = [im.permute(1, 2, 0).cpu().numpy() for im in imgs]
        return self.processor.image_processor(arrays, do_rescale=False, return_tensors="pt")["pixel_values"]


class OpenClip(nn.Module):
    """An ``open_clip`` CLIP (VisionTransformer tower) behind the ``ClipLike`` surface."""

    def __init__(self, model: nn.Module, tokenizer=None, preprocess=None):
        super().__init__()
        v = model.visual
        if not hasattr(v, "transformer") or not hasattr(v, "class_embedding"):
            raise ValueError(f"open_clip model with a {type(v).__name__} image tower: deep prompt tuning needs a ViT "
                             "tower (VisionTransformer)")
        self.model, self.tokenizer, self.preprocess_fn = model, tokenizer, preprocess
        self.width = v.class_embedding.shape[-1]

    def vision_tokens(self, x: torch.Tensor) -> torch.Tensor:
        v = self.model.visual
        h = v.conv1(x).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(h.dtype).expand(len(h), 1, -1)
        return v.ln_pre(torch.cat([cls, h], 1) + v.positional_embedding.to(h.dtype))

    def vision_blocks(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        t = self.model.visual.transformer
        if not getattr(t, "batch_first", True):  # old open_clip: blocks take (L, B, D)
            return [lambda h, b=b: b(h.transpose(0, 1)).transpose(0, 1) for b in t.resblocks]
        return list(t.resblocks)

    def vision_pool(self, h: torch.Tensor) -> torch.Tensor:
        v = self.model.visual
        out = v.ln_post(h[:, 0])
        return out @ v.proj if v.proj is not None else out

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return encode_image(self, x)

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(captions)))

    def logit_scale_value(self) -> torch.Tensor:
        return self.model.logit_scale.exp().clamp(max=100.0)


def load_clip(name_or_path: str | Path, backend: str = "transformers", *, pretrained: str | None = None,
              device: str | torch.device = "cpu") -> nn.Module:
    """Load a pretrained CLIP checkpoint (eval mode) behind the ``ClipLike`` surface.

    ``backend="transformers"``: ``CLIPModel.from_pretrained`` + ``CLIPProcessor`` from a hub id or
    a local folder, safetensors weights only. ``backend="open_clip"``: ``open_clip``'s model name
    (e.g. ``"ViT-B-16"``) with ``pretrained`` a tag or a local checkpoint file.
    """
    if backend == "transformers":
        from transformers import CLIPModel, CLIPProcessor

        try:
            model = CLIPModel.from_pretrained(str(name_or_path), use_safetensors=True)
        except OSError as e:
            raise OSError(f"could not load a CLIP model from {name_or_path!r} with safetensors weights ({e}); give a "
                          "folder saved with save_pretrained(safe_serialization=True) or a hub id that has "
                          "model.safetensors") from e
        try:
            processor = CLIPProcessor.from_pretrained(str(name_or_path))
        except (OSError, ValueError, TypeError):
            processor = None  # weights only: image features work, text needs encode_text from elsewhere
        return HFClip(model.to(device).eval(), processor)
    if backend == "open_clip":
        try:
            import open_clip
        except ImportError as e:
            raise ImportError("backend='open_clip' needs the optional open_clip package: pip install 'obliviate[clip]' "
                              "(open_clip_torch; or use backend='transformers' with a Hugging Face CLIP checkpoint)") from e
        model, _, preprocess = open_clip.create_model_and_transforms(str(name_or_path), pretrained=pretrained,
                                                                     device=device)
        return OpenClip(model.eval(), open_clip.get_tokenizer(str(name_or_path)), preprocess)
    raise ValueError(f"unknown CLIP backend {backend!r}; use 'transformers' or 'open_clip'")


# ---- deep visual prompt tuning ----------------------------------------------------------------
class PromptedVision(nn.Module):
    """VPT-deep over a frozen CLIP vision tower (``clip`` is frozen here; it is not copied).

    Sequence at block i < n_layers: [CLS, P_i (n_tokens), patches]; block i's output prompt
    positions are replaced by P_{i+1}. ``prompt_generator(prompts, patches)`` (ADU's InstaPG), when
    given, runs at block ``generator_layer`` and its output is added to P_i for every prompted
    block i >= generator_layer, so later prompts depend on the image.
    """

    def __init__(self, clip: nn.Module, n_tokens: int = 8, n_layers: int = 9, init_std: float = 0.02,
                 prompt_generator: nn.Module | None = None, generator_layer: int = 1,
                 generator: torch.Generator | None = None):
        super().__init__()
        depth = len(clip.vision_blocks())
        if n_tokens < 0 or n_layers < 0:
            raise ValueError(f"n_tokens and n_layers must be >= 0, got {n_tokens} and {n_layers}")
        self.n_tokens, self.n_layers = n_tokens, min(n_layers, depth)
        self.clip = clip.requires_grad_(False)
        self.prompts = nn.Parameter(torch.randn(self.n_layers, n_tokens, clip.width, generator=generator) * init_std)
        self.prompt_generator, self.generator_layer = prompt_generator, generator_layer
        if prompt_generator is not None and not 0 <= generator_layer < max(self.n_layers, 1):
            raise ValueError(f"generator_layer {generator_layer} must be a prompted block (0..{self.n_layers - 1})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image features ``(B, E)`` with the prompts inserted (unnormalised)."""
        h = self.clip.vision_tokens(x)
        n, extra = self.n_tokens, None
        for i, block in enumerate(self.clip.vision_blocks()):
            if i < self.n_layers and n > 0:
                p = self.prompts[i].unsqueeze(0).expand(len(h), -1, -1).to(h.dtype)
                patches = h[:, 1:] if i == 0 else h[:, 1 + n:]
                if self.prompt_generator is not None and i == self.generator_layer:
                    extra = self.prompt_generator(p, patches)  # instance-specific prompt offset
                if extra is not None:
                    p = p + extra
                h = torch.cat([h[:, :1], p, patches], 1)
            h = block(h)
        return self.clip.vision_pool(h)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


class ClipClassifier(nn.Module):
    """Zero-shot CLIP classifier: logits = exp(t) · cos(image feature, caption feature of each class).

    ``image_encoder`` (a ``PromptedVision``, or None for the plain tower) makes the image features;
    the caption features are computed once (frozen buffer). ``embed(x)`` is the L2-normalised image
    feature, so representation-level image methods work on it too.
    """

    def __init__(self, clip: nn.Module, captions: Sequence[str], image_encoder: nn.Module | None = None):
        super().__init__()
        self.clip, self.image_encoder, self.captions = clip, image_encoder, list(captions)
        with torch.no_grad():
            t = F.normalize(clip.encode_text(self.captions).float(), dim=-1)
        self.register_buffer("text_features", t)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        f = self.image_encoder(x) if self.image_encoder is not None else encode_image(self.clip, x)
        return F.normalize(f.float(), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clip.logit_scale_value().float() * self.embed(x) @ self.text_features.T


def frozen_copy(clip: nn.Module) -> nn.Module:
    """An eval-mode, gradient-free copy of a CLIP model (methods never change the caller's)."""
    return copy.deepcopy(clip).eval().requires_grad_(False)
