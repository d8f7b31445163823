"""Memory plan: the memory one unlearning run needs per device, from the model's config alone.

No weights are read: the parameter count comes from the architecture fields of the config
(``hidden_size``, ``num_hidden_layers``, ``intermediate_size``, ``vocab_size``,
``num_attention_heads``, ``num_key_value_heads``, ``head_dim``, ``tie_word_embeddings``, biases),
and the rest from the method's registration (its data streams, whether it builds a frozen
reference model) and the run's settings. ``obliviate plan`` prints it; `plan_memory` returns it.

Notation: P parameters, T trainable parameters, b bytes per value of the model's dtype (2 for
bfloat16/float16, 4 for float32), N processes, B micro-batch per process, S tokens per sequence
(the padded length, at most ``max_length``), H hidden size, L layers, A attention heads, K key/value
heads, d head dim, I MLP width, V vocabulary, r LoRA rank.

Parameters (Llama / Mistral / Qwen2 decoders, what ``sum(p.numel())`` gives)::

    per layer  = H·A·d + 2·H·K·d + A·d·H      (q, k, v, o projections)
               + 3·H·I                        (gate, up, down: the gated MLP)
               + 2·H                          (the two RMSNorm weights)
               + biases (Qwen2: A·d + 2·K·d on q/k/v; Llama attention_bias: + H on o; mlp_bias: 2·I + H)
    P = L·per layer + V·H (embedding) + H (final norm) + V·H (output layer, unless tied)

LoRA trains r·(in + out) parameters per adapted projection per layer, on peft's default layers for
the architecture (q_proj and v_proj for Llama, Mistral, Qwen2) or on ``lora_target``; peft keeps the
adapters in float32 whatever the model's dtype, so their bytes per value are 4.

Bytes per device (the training loop trains in the model's dtype, no mixed precision)::

    weights      P·b  (+ LoRA adapters T·4)
    gradients    T·b  (LoRA: T·4)
    optimizer    AdamW 2·T·b (exp_avg, exp_avg_sq in the parameter's dtype; SGD momentum T·b)
    reference    P·b for a method that builds a frozen reference copy (NPO, DPO, a KL retain term ...);
                 0 with LoRA, where the reference is the base model with its adapters switched off
    DDP buckets  T·b when N > 1 without sharding (torch DDP's default gradient_as_bucket_view=False
                 keeps a flat copy of the gradients for the all-reduce)

Sharding over N processes: ``zero2`` divides gradients and optimizer state by N; ``fsdp`` and
``zero3`` divide weights, gradients, optimizer state and the reference model by N and add the
gathered working set: two decoder layers' weights (the one computing and the one prefetched) and
one layer's unsharded gradients, 3·(per layer)·b, plus the parameters outside the decoder layers
(embedding, final norm, output layer: the root unit), gathered whole. DeepSpeed (``zero2``,
``zero3``) with a 16-bit model keeps float32 master weights and float32 Adam moments: optimizer
state 12·T/N instead of 2·T·b/N. accelerate's FSDP2 (``fsdp``, with the shipped preset's bf16 mixed
precision) upcasts the trained parameters of a 16-bit model to float32 in place and computes in
16 bits: weights ((P-T)·b + 4·T)/N, gradients 4·T/N, moments 2·4·T/N.

Activations: what autograd keeps from the forward pass for the backward pass, counted from the
tensors transformers' Llama decoder (SDPA attention) saves, per forward pass that carries gradients
(one per data stream the method reads: GA reads forget; GradDiff and NPO forget and retain; DPO
forget, its alternative answers and retain). Per token, full fine-tuning::

    per layer  2·(4H + 2bH + 4)    the two RMSNorms: their float32 input, the normalised value, the
                                   output the next projections keep, 1/rms
             + b·4·A·d + 4·A       SDPA: q, k and v (k, v repeated to A heads: transformers repeats
                                   them whenever a padding mask is passed), the output, logsumexp
             + 4·b·I               the MLP: gate, up, SiLU(gate), their product
             + B·S²·b per layer    the padding mask SDPA turns into a float bias each layer
    once       8 + (4H + 2bH + 4)  token ids for the embedding, the final norm, and
               2·S·d·b             rotary cos/sin, and
               (4·V + 8)·B·(S−1)   the float32 log-softmax the loss keeps (and the targets)

LoRA (base frozen): a frozen projection keeps no input, so the norms keep 4H + 4, the MLP 3·b·I,
layer 0's input norm nothing, the final norm 4H + 4 and the embedding nothing; each adapter keeps
its rank-r float32 hidden 4·r and its input (float32: shared by the adapters on one input, and the
SDPA output for o_proj is already kept; 16-bit: a float32 copy 4·in per adapter). With gradient
checkpointing (non-reentrant, every decoder layer) a layer keeps only its input, b·H per token, and
recomputes the rest in the backward pass (one layer's worth at a time, counted as transient).

Transient: the largest short-lived buffers of a step, not kept between steps: the loss's backward
through the output layer, (8 + b)·B·S·V bytes (the float32 gradient of the log-softmax and its
input, the logits' gradient), plus one layer's activations recomputed under checkpointing.

Host memory (CPU RAM per process): the guard rails' roll-back copy of the trainable weights, taken
at the start and, below 200M trainable parameters, again at each probe (two copies held).

What it leaves out: the CUDA context and allocator fragmentation (a few hundred MiB to ~10% on a
GPU), the Python process itself on a CPU, data and tokenizer, generation during the audit. The
estimate was checked against measured memory in ``benchmarks/plan_memory.py`` (see
benchmarks/README.md) and, for the activation terms, equals the bytes autograd saves on tiny
models exactly (tests/test_plan.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from obliviate.config import ConfigError

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2")
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
SHARDINGS = ("none", "zero2", "zero3", "fsdp")
LAYER_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# The guard rails keep an in-memory roll-back copy at each probe only below this many trainable
# parameters (obliviate.train.loop: `small`).
SNAPSHOT_LIMIT = 200_000_000
LORA_BYTES = 4  # peft casts adapters to float32 (autocast_adapter_dtype=True)


@dataclass(frozen=True)
class Architecture:
    """The fields of a decoder's config that fix its parameter count and activation sizes."""

    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False

    @classmethod
    def from_config(cls, config: Any) -> "Architecture":
        """Read a transformers config (Llama, Mistral or Qwen2 family); other types are refused."""
        model_type = getattr(config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(f"obliviate plan knows the {', '.join(SUPPORTED_MODEL_TYPES)} decoders; this config is "
                              f"model_type {model_type!r}. Its parameter count and activations follow other layers "
                              "(open an issue with the config to have it added)")
        heads = int(config.num_attention_heads)
        attention_bias = bool(getattr(config, "attention_bias", False))
        return cls(
            model_type=model_type,
            hidden_size=int(config.hidden_size),
            num_layers=int(config.num_hidden_layers),
            num_heads=heads,
            num_kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=int(getattr(config, "head_dim", None) or config.hidden_size // heads),
            intermediate_size=int(config.intermediate_size),
            vocab_size=int(config.vocab_size),
            tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
            # Qwen2: bias on q/k/v, none on o; Llama's attention_bias: all four; Mistral: none.
            qkv_bias=model_type == "qwen2" or attention_bias,
            o_bias=model_type == "llama" and attention_bias,
            mlp_bias=model_type == "llama" and bool(getattr(config, "mlp_bias", False)),
        )

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each projection of one decoder layer."""
        h, q, kv, i = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim, \
            self.intermediate_size
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def layer_params(self) -> int:
        """Parameters of one decoder layer."""
        shapes = self.linear_shapes()
        n = sum(a * b for a, b in shapes.values()) + 2 * self.hidden_size
        if self.qkv_bias:
            n += shapes["q_proj"][1] + shapes["k_proj"][1] + shapes["v_proj"][1]
        if self.o_bias:
            n += self.hidden_size
        if self.mlp_bias:
            n += 2 * self.intermediate_size + self.hidden_size
        return n

    def outer_params(self) -> int:
        """Parameters outside the decoder layers: embedding, final norm, output layer (unless tied)."""
        emb = self.vocab_size * self.hidden_size
        return emb + self.hidden_size + (0 if self.tied_embeddings else emb)

    def param_count(self) -> int:
        """All parameters, each shared tensor once (as ``sum(p.numel() for p in model.parameters())``)."""
        return self.num_layers * self.layer_params() + self.outer_params()

    def lora_params(self, r: int, targets: Sequence[str]) -> int:
        """Trainable LoRA parameters: r·(in + out) per adapted projection per layer."""
        shapes = self.linear_shapes()
        return self.num_layers * sum(r * (shapes[t][0] + shapes[t][1]) for t in targets)


def activation_bytes(arch: Architecture, batch: int, seq: int, dtype_bytes: int, *, lora_targets: Sequence[str] = (),
                     lora_r: int = 8, lora: bool = False, checkpointing: bool = False) -> tuple[int, int]:
    """(kept, recomputed): bytes autograd keeps for one forward pass with gradients through the
    model and the token loss, and, under checkpointing, one layer's activations recomputed in the
    backward pass (0 without). The formula is the module docstring's."""
    H, A, d, I, V = arch.hidden_size, arch.num_heads, arch.head_dim, arch.intermediate_size, arch.vocab_size
    b, n = dtype_bytes, batch * seq
    attn = b * 4 * A * d + 4 * A  # q, repeated k and v, SDPA output; float32 logsumexp
    mask = batch * seq * seq * b  # per layer: the padding mask as a float bias
    if not lora:
        layer = n * (2 * (4 * H + 2 * b * H + 4) + attn + 4 * b * I) + mask
        outside = n * (8 + 4 * H + 2 * b * H + 4)
    else:
        groups = {"q_proj": "attn_in", "k_proj": "attn_in", "v_proj": "attn_in", "o_proj": "attn_out",
                  "gate_proj": "mlp_in", "up_proj": "mlp_in", "down_proj": "mlp_mid"}
        shapes = arch.linear_shapes()
        adapters = 4 * lora_r * len(lora_targets)
        if b == LORA_BYTES:  # float32: an adapter keeps its input, shared with adapters on the same one
            kept_inputs = {groups[t]: shapes[t][0] for t in lora_targets if groups[t] != "attn_out"}
            adapters += 4 * sum(kept_inputs.values())
        else:  # 16-bit: each adapter keeps its own float32 copy of its input
            adapters += 4 * sum(shapes[t][0] for t in lora_targets)
        layer = n * (2 * (4 * H + 4) + attn + 3 * b * I + adapters) + mask
        outside = n * (4 * H + 4)
        if not checkpointing:  # layer 0's input norm has nothing upstream that needs a gradient
            outside -= n * (4 * H + 4)
    head = (4 * V + 8) * batch * (seq - 1) + 4  # float32 log-softmax + int64 targets + the loss's weight
    if checkpointing:
        return arch.num_layers * n * H * b + outside + head, layer
    rotary = 2 * seq * d * b
    return arch.num_layers * layer + outside + rotary + head, 0


@dataclass(frozen=True)
class MemoryPlan:
    """The estimate for one run, in bytes per device (``host_bytes``: CPU RAM per process)."""

    model: str
    model_type: str
    method: str
    params: int
    trainable: int
    lora: bool
    lora_r: int
    lora_targets: tuple[str, ...]
    dtype: str
    num_processes: int
    sharding: str
    batch_size: int
    max_length: int
    grad_streams: int
    reference_model: bool
    weights: int
    gradients: int
    optimizer: int
    reference: int
    ddp_buckets: int
    gathered: int
    activations: int
    activations_checkpointed: int
    transient: int
    transient_checkpointed: int
    host_bytes: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fixed(self) -> int:
        """Bytes that do not depend on the batch: weights, gradients, optimizer, reference, buckets, gathered."""
        return self.weights + self.gradients + self.optimizer + self.reference + self.ddp_buckets + self.gathered

    @property
    def total(self) -> int:
        """Peak per device without gradient checkpointing."""
        return self.fixed + self.activations + self.transient

    @property
    def total_checkpointed(self) -> int:
        """Peak per device with gradient checkpointing."""
        return self.fixed + self.activations_checkpointed + self.transient_checkpointed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fixed": self.fixed, "total": self.total, "total_checkpointed": self.total_checkpointed}

    def format(self) -> str:
        """The plan as the text table ``obliviate plan`` prints."""
        shard = "" if self.sharding == "none" else f", {self.sharding} sharding"
        train = (f"LoRA r={self.lora_r} on {', '.join(self.lora_targets)}" if self.lora else "full fine-tuning")
        lines = [f"memory plan: {self.method} on {self.model} ({self.model_type}, {self.params / 1e9:.3f}B parameters, "
                 f"{self.trainable:,} trainable: {train}), {self.dtype}, {self.num_processes} process(es){shard}",
                 f"micro-batch {self.batch_size} x {self.max_length} tokens per process, {self.grad_streams} forward "
                 f"pass(es) with gradients per micro-batch; reference model: "
                 f"{('yes (the base with adapters off)' if self.lora else 'yes') if self.reference_model else 'no'}", ""]
        rows = [("weights", self.weights), ("gradients", self.gradients), ("optimizer state", self.optimizer),
                ("reference model", self.reference)]
        if self.ddp_buckets:
            rows.append(("DDP gradient buckets", self.ddp_buckets))
        if self.gathered:
            rows.append(("gathered shards (working set)", self.gathered))
        width = 34
        lines.append(f"{'per device':<{width}}{'no checkpointing':>18}{'checkpointing':>16}")
        for name, v in rows:
            lines.append(f"{name:<{width}}{_gib(v):>18}{_gib(v):>16}")
        lines.append(f"{'activations (kept for backward)':<{width}}{_gib(self.activations):>18}"
                     f"{_gib(self.activations_checkpointed):>16}")
        lines.append(f"{'transient (loss backward, recompute)':<{width}}{_gib(self.transient):>18}"
                     f"{_gib(self.transient_checkpointed):>16}")
        lines.append(f"{'total':<{width}}{_gib(self.total):>18}{_gib(self.total_checkpointed):>16}")
        lines.append(f"\nhost RAM per process: {_gib(self.host_bytes)} (the guard rails' roll-back copy of the "
                     "trainable weights)")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _gib(n: int) -> str:
    """Bytes in GiB, or MiB below 1 GiB."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 or n == 0 else f"{n / 2**20:.1f} MiB"


def read_config(model: str, gguf_file: Optional[str] = None) -> Any:
    """The transformers config of MODEL: a config.json file, a model folder (or a GGUF file in it),
    or a hub id. Reads the config only, never the weights."""
    from transformers import AutoConfig

    p = Path(model).expanduser()
    looks_local = p.exists() or model.endswith(".json") or model.startswith((".", "/", "~")) or gguf_file is not None
    if looks_local and not p.exists():
        raise ConfigError(f"--model {model}: no such file or folder; give a config.json, a model folder that holds "
                          "one, or a hub id")
    try:
        if p.is_file():
            if p.suffix == ".gguf":
                return AutoConfig.from_pretrained(p.parent, gguf_file=p.name)
            data = json.loads(p.read_text())
            if "model_type" not in data:
                raise ConfigError(f"--model {model}: this JSON file has no 'model_type'; it is not a transformers "
                                  "config.json")
            return AutoConfig.for_model(**data)
        if p.is_dir():
            if gguf_file is None and not (p / "config.json").exists():
                ggufs = sorted(x.name for x in p.glob("*.gguf"))
                hint = f"; it holds GGUF files, pick one with --gguf_file ({', '.join(ggufs)})" if ggufs else ""
                raise ConfigError(f"--model {model}: the folder has no config.json{hint}")
            return AutoConfig.from_pretrained(p, gguf_file=gguf_file, local_files_only=True)
        return AutoConfig.from_pretrained(model)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--model {model}: not valid JSON ({e})") from None
    except (OSError, ValueError, KeyError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"--model {model}: cannot read its config ({type(e).__name__}: {e})") from None


def needs_reference_model(info: Any, method_config: Any) -> bool:
    """Whether the training loop builds a frozen reference model for this method and config: the
    method declares ``needs=("reference_model", ...)``, or its retain term is KL to the original."""
    return "reference_model" in info.needs or getattr(method_config, "retain_loss", "") == "kl"


def plan_memory(model: str | Any, method: str, *, lora: bool = False, lora_r: Optional[int] = None,
                lora_target: Sequence[str] = (), num_processes: int = 1,
                sharding: Literal["none", "zero2", "zero3", "fsdp"] = "none",
                dtype: Literal["bfloat16", "float32", "float16"] = "bfloat16", batch_size: Optional[int] = None,
                max_length: Optional[int] = None, optimizer: Optional[str] = None,
                method_overrides: Optional[dict] = None, gguf_file: Optional[str] = None) -> MemoryPlan:
    """Estimate the memory per device of unlearning ``model`` with ``method`` (see the module
    docstring for the formula). ``model``: a config.json path, a model folder, a hub id, or a
    transformers config object. ``batch_size``, ``max_length``, ``lora_r`` and ``optimizer``
    default to `obliviate.train.loop.TrainConfig`'s; ``method_overrides`` are method config
    fields (e.g. ``{"retain_loss": "kl"}``, which adds the reference model to GradDiff)."""
    from obliviate import registry
    from obliviate.train.loop import TrainConfig

    defaults = TrainConfig()
    batch_size = defaults.batch_size if batch_size is None else batch_size
    max_length = defaults.max_length if max_length is None else max_length
    lora_r = defaults.lora_r if lora_r is None else lora_r
    optimizer = defaults.optimizer if optimizer is None else optimizer
    checks = (("num_processes", num_processes, num_processes >= 1, "must be at least 1"),
              ("batch_size", batch_size, batch_size >= 1, "must be at least 1"),
              ("max_length", max_length, max_length >= 2, "must be at least 2 tokens"),
              ("lora_r", lora_r, lora_r >= 1, "must be at least 1"),
              ("dtype", dtype, dtype in DTYPE_BYTES, f"must be one of {', '.join(DTYPE_BYTES)}"),
              ("sharding", sharding, sharding in SHARDINGS, f"must be one of {', '.join(SHARDINGS)}"),
              ("optimizer", optimizer, optimizer in ("adamw", "sgd"), "must be adamw or sgd"))
    for name, value, ok, why in checks:
        if not ok:
            raise ConfigError(f"--{name} {value!r}: {why}")
    if sharding != "none" and num_processes == 1:
        raise ConfigError(f"--{sharding} shards over processes; give --num_processes N with N > 1")
    info = registry.get("method", method)
    spec = info.obj
    if "text" not in info.modalities or getattr(spec, "loss", None) is None:
        gradient = [p.name for p in registry.plugins("method") if "text" in p.modalities and p.obj.loss is not None]
        raise ConfigError(f"method {method!r} is not a gradient method of the language-model training loop (it is a "
                          f"{'procedure with its own schedule' if 'text' in info.modalities else 'vision method'}); "
                          f"obliviate plan covers: {', '.join(gradient)}")
    mcfg = spec.make_config(method_overrides or {})
    config = model if not isinstance(model, (str, Path)) else read_config(str(model), gguf_file)
    arch = Architecture.from_config(config)
    b, n_proc = DTYPE_BYTES[dtype], num_processes
    P = arch.param_count()
    targets: tuple[str, ...] = ()
    if lora:
        from obliviate.models.lora import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

        targets = tuple(lora_target) or tuple(PEFT_DEFAULTS[arch.model_type])
        unknown = [t for t in targets if t not in LAYER_LINEARS]
        if unknown:
            raise ConfigError(f"--lora_target {', '.join(unknown)}: not a projection of a {arch.model_type} decoder "
                              f"layer; choose from {', '.join(LAYER_LINEARS)}")
        T, tb = arch.lora_params(lora_r, targets), LORA_BYTES
    else:
        T, tb = P, b
    ref = needs_reference_model(info, mcfg)
    streams = len(spec.streams_for(mcfg))
    shard_params = sharding in ("zero3", "fsdp")
    shard_grads = sharding != "none"
    weights = P * b // (n_proc if shard_params else 1) + (T * tb if lora else 0)
    gradients = T * tb // (n_proc if shard_grads else 1)
    moments = 2 if optimizer == "adamw" else 1
    if sharding in ("zero2", "zero3") and tb < 4:  # DeepSpeed: float32 master weights + float32 moments
        opt = (4 + 4 * moments) * T // n_proc
    elif sharding == "fsdp" and tb < 4:  # accelerate's FSDP2: trained parameters upcast to float32 in place
        weights = ((P - T) * b + 4 * T) // n_proc
        gradients = 4 * T // n_proc
        opt = moments * 4 * T // n_proc
    else:
        opt = moments * T * tb // (n_proc if shard_grads else 1)
    reference = 0 if (not ref or lora) else P * b // (n_proc if shard_params else 1)
    buckets = T * tb if (n_proc > 1 and sharding == "none") else 0
    gathered = 0
    if shard_params:
        gathered = (3 * arch.layer_params() + arch.outer_params()) * b
    kept, _ = activation_bytes(arch, batch_size, max_length, b, lora=lora, lora_targets=targets, lora_r=lora_r)
    kept_ck, recomputed = activation_bytes(arch, batch_size, max_length, b, lora=lora, lora_targets=targets,
                                           lora_r=lora_r, checkpointing=True)
    head = (8 + b) * batch_size * max_length * arch.vocab_size
    copies = 2 if T <= SNAPSHOT_LIMIT else 1
    notes = []
    if spec.prepare is not None:
        notes.append(f"{method} runs a prepare hook (masks, saliency, frozen layers or noise); the plan counts every "
                     "parameter as trainable, an upper bound")
    if sharding == "zero3":
        notes.append("ZeRO-3 partitions the frozen reference model too (an engine of its own, README, Multi-GPU); "
                     "gradient-mask methods (GRIN) are refused under it")
    if "retain_set (optional)" in info.needs or "retain_set (optional, alpha > 0)" in info.needs:
        notes.append("counts the optional retain stream; without retain data there is one forward pass fewer")
    if dtype != "float32" and not lora:
        notes.append(f"{dtype} weights are updated in {dtype} (no float32 master copy, as the loop trains in the "
                     "model's dtype)")
    return MemoryPlan(
        model=str(model) if isinstance(model, (str, Path)) else getattr(config, "_name_or_path", "") or "config",
        model_type=arch.model_type, method=method, params=P, trainable=T, lora=lora, lora_r=lora_r, lora_targets=targets,
        dtype=dtype, num_processes=n_proc, sharding=sharding, batch_size=batch_size, max_length=max_length,
        grad_streams=streams, reference_model=ref, weights=weights, gradients=gradients, optimizer=opt,
        reference=reference, ddp_buckets=buckets, gathered=gathered, activations=streams * kept,
        activations_checkpointed=streams * kept_ck, transient=head, transient_checkpointed=head + recomputed,
        host_bytes=copies * T * tb, notes=tuple(notes))
