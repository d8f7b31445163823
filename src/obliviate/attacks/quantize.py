"""Weight quantisation attacks: does "forgotten" knowledge come back at low precision?

Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization" (ICLR 2025,
arXiv 2410.16454) found that unlearned models keep ~21% of the forgotten knowledge at full
precision and ~83% after 4-bit quantisation, because unlearning with a utility constraint moves
weights by less than one quantisation step. Round-to-nearest (RTN) is implemented here in torch
(per output channel or group-wise along the input dimension); `optimum-quanto` is used when
installed and asked for.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from obliviate.attacks.base import AttackResult, attack
from obliviate.data.task import ForgetTask

PAPER = "Catastrophic Failure of LLM Unlearning via Quantization"
ARXIV = "2410.16454"


def _symmetric_scale(x: torch.Tensor, bits: int) -> torch.Tensor:
    """The symmetric RTN step max|x| / (2^(b-1) - 1) over the last dimension (one group)."""
    return x.abs().amax(-1, keepdim=True).clamp_min(1e-12) / (2 ** (bits - 1) - 1)


def quantize_tensor_rtn(w: torch.Tensor, bits: int, group_size: int = 0, symmetric: bool = True) -> torch.Tensor:
    """Fake-quantise a 2-D weight (out, in) by round-to-nearest and return the dequantised tensor.

    Scales are per output row (``group_size=0``) or per contiguous group of ``group_size`` input
    columns. Symmetric: q = clamp(round(w / s), -2^(b-1), 2^(b-1)-1), s = max|w| / (2^(b-1)-1).
    Asymmetric: q = clamp(round(w / s) + z, 0, 2^b-1), s = (max-min)/(2^b-1), z = round(-min/s).
    """
    if w.dim() != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(w.shape)}")
    out_f, in_f = w.shape
    g = in_f if group_size <= 0 else group_size
    if in_f % g:
        raise ValueError(f"group_size {g} does not divide the input dimension {in_f}")
    x = w.detach().float().reshape(out_f, in_f // g, g)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = _symmetric_scale(x, bits)
        q = torch.clamp(torch.round(x / scale), -qmax - 1, qmax)
        deq = q * scale
    else:
        qmax = 2**bits - 1
        lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
        scale = (hi - lo).clamp_min(1e-12) / qmax
        zero = torch.round(-lo / scale)
        q = torch.clamp(torch.round(x / scale) + zero, 0, qmax)
        deq = (q - zero) * scale
    return deq.reshape(out_f, in_f).to(w.dtype)


def quantize_model_rtn(model: nn.Module, bits: int, group_size: int = 0, symmetric: bool = True,
                       include_lm_head: bool = False) -> tuple[nn.Module, int]:
    """A copy of ``model`` with every Linear weight fake-quantised; returns (model, n_layers).

    The output head stays in full precision by default, as in common 4/8-bit deployments.
    Group sizes that do not divide a layer fall back to per-channel scales for that layer.
    """
    m = copy.deepcopy(model)
    n = 0
    with torch.no_grad():
        for _, mod, g in _quantised_linears(m, group_size, include_lm_head):
            mod.weight.copy_(quantize_tensor_rtn(mod.weight, bits, g, symmetric))
            n += 1
    return m, n


def _quantised_linears(model: nn.Module, group_size: int, include_lm_head: bool):
    """(name, Linear, group size) for every layer :func:`quantize_model_rtn` quantises: the output
    head only when asked, and per-channel scales (0) where ``group_size`` does not divide a layer."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and (include_lm_head or mod is not head):
            yield name, mod, (group_size if group_size and mod.weight.shape[1] % group_size == 0 else 0)


def _group_steps(w: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """The symmetric RTN step of every weight's group (``group_size`` 0: its row), shaped like ``w``."""
    out_f, in_f = w.shape
    g = group_size or in_f
    x = w.detach().float().reshape(out_f, in_f // g, g)
    return _symmetric_scale(x, bits).expand_as(x).reshape(out_f, in_f)


def within_half_step(reference: nn.Module, model: nn.Module, bits: int = 4, group_size: int = 128,
                     include_lm_head: bool = False) -> dict[str, float]:
    """How far ``model`` moved from ``reference`` in units of the reference's RTN step.

    The quantisation-failure paper's mechanism: a weight that moved less than half a step usually
    rounds to the reference's grid point, so an update made only of such moves can vanish at low
    precision. Returns ``share_within_half_step`` (share of the quantised Linear weights with
    |Δw| < step/2), ``mean_move_in_steps`` (mean |Δw| / step), ``share_changed`` (Δw ≠ 0) and
    ``changed_within_half_step`` (the first share among changed weights only, for methods such as
    SURE that update a few modules), over the layers that
    :func:`quantize_model_rtn` quantises with the same arguments.
    """
    ref = dict(reference.named_modules())
    within, moved, n, changed, changed_within = 0.0, 0.0, 0, 0, 0
    for name, mod, g in _quantised_linears(model, group_size, include_lm_head):
        w0 = ref[name].weight.detach().float()
        rel = (mod.weight.detach().float() - w0).abs() / _group_steps(w0, bits, g)
        within += (rel < 0.5).sum().item()
        moved += rel.sum().item()
        n += rel.numel()
        changed += (rel > 0).sum().item()
        changed_within += ((rel > 0) & (rel < 0.5)).sum().item()
    if n == 0:
        raise ValueError("no Linear layers to compare; is this a transformer model?")
    return {"share_within_half_step": within / n, "mean_move_in_steps": moved / n, "share_changed": changed / n,
            "changed_within_half_step": changed_within / changed if changed else 1.0}


def _quanto(model: nn.Module, bits: int) -> nn.Module:
    try:
        from optimum.quanto import freeze, qint4, qint8, quantize
    except ImportError:
        raise ImportError("backend='quanto' needs optimum-quanto: pip install optimum-quanto") from None
    m = copy.deepcopy(model)
    quantize(m, weights=qint4 if bits == 4 else qint8)
    freeze(m)
    return m


def _make(bits: int, default_group: int):
    def run(model: nn.Module, task: ForgetTask, tokenizer=None, *, group_size: int = default_group,
            symmetric: bool = True, backend: str = "rtn", include_lm_head: bool = False) -> AttackResult:
        if backend == "quanto":
            return AttackResult(_quanto(model, bits), task, {"bits": bits, "backend": "quanto"})
        if backend != "rtn":
            raise ValueError(f"unknown quantisation backend {backend!r}; use 'rtn' or 'quanto'")
        q, n = quantize_model_rtn(model, bits, group_size, symmetric, include_lm_head)
        return AttackResult(q, task, {"bits": bits, "group_size": group_size, "symmetric": symmetric,
                                      "backend": "rtn", "layers": n})

    run.__doc__ = f"{bits}-bit round-to-nearest weight quantisation of every Linear layer."
    return run


quantize_int8 = attack("quantize_int8", paper=PAPER, arxiv=ARXIV, code="https://github.com/zzwjames/FailureLLMUnlearning",
                       summary="8-bit per-channel round-to-nearest weight quantisation")(_make(8, 0))
# 4-bit uses groups of 128 input columns like GPTQ/AWQ deployments (per-channel where 128 does not divide).
quantize_int4 = attack("quantize_int4", paper=PAPER, arxiv=ARXIV, code="https://github.com/zzwjames/FailureLLMUnlearning",
                       summary="4-bit group-wise (128) round-to-nearest weight quantisation")(_make(4, 128))
