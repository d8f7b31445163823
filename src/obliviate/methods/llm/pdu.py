"""PDU: primal-dual unlearning with a logit-margin flattening loss.

Entesari, Hatami, Khaziev, Ramakrishna, Fazlyab, "Constrained Entropic Unlearning: A Primal-Dual
Framework for Large Language Models" (arXiv 2506.05314). Reference code: OpenUnlearning `PDU`
(`src/trainer/unlearn/pdu.py`, configs/trainer/PDU.yaml, community/methods/PDU/run.sh).

Unlearning as a constrained problem: flatten the next-token distribution on the forget answers
while the retain loss stays under a budget ε,

    min_θ  L_f(θ) = mean_t (max_v z_t,v - mean_v z_t,v)²   s.t.  L_r(θ) = NLL(retain) ≤ ε,

with z_t the logits at a position that predicts an answer token. The margin between the top logit
and the mean logit is zero exactly when every logit is equal (a uniform distribution); unlike an
entropy objective it needs no softmax and its gradient does not vanish near the optimum. The
constraint is handled by gradient descent on the Lagrangian in θ and projected gradient ascent in
the dual variable λ:

    loss_k  = γ·L_f + λ_k·(L_r - ε)                 (the primal step minimises this)
    λ_{k+1} = max(0, λ_k + η·(L_r - ε))             (dual ascent, after this step's loss)

so λ grows while the retain loss exceeds ε and shrinks back (to 0 at most) once it is inside.
λ_0 = α. As in the reference code, λ is updated on every loss evaluation (each micro-batch) once
``dual_warmup_epochs`` passes over the forget set are done, and stays at α before that.

Differences from the reference code, on purpose:
- the margin is taken at the positions that *predict* an answer token (shifted labels, as every
  loss here); OpenUnlearning masks the unshifted logits with the unshifted labels, one position
  later (it scores the position after the last answer token and skips the one before the first);
- OpenUnlearning's other dual schedule (``dual_update_upon: epoch``, which re-scores every retain
  batch in eval mode after each epoch) is not offered: both published recipes (TOFU and MUSE in
  run.sh) update per step;
- λ lives in the run's `StepContext.state`, which checkpoints carry, so a resumed run goes on
  with λ as it was (the logged ``dual_lambda`` shows its path). Under N processes each rank
  updates its own λ from its own retain batches, as OpenUnlearning's trainer does under DDP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term

_LAMBDA = "pdu_lambda"


@dataclass(frozen=True)
class PDUConfig:
    gamma: float = 1.0  # forget weight (OpenUnlearning PDU.yaml; fixed, not a dual variable)
    alpha: float = 1.0  # λ_0, the starting retain multiplier (PDU.yaml; run.sh uses 100 on TOFU, 50 on MUSE)
    # ε, the retain-loss budget. OpenUnlearning leaves it required (`???`); its README says to take it
    # "appropriately larger" than the starting model's retain loss; 0.3 is its TOFU recipe (run.sh).
    retain_eps: float = 0.3
    primal_dual: bool = True  # False: fixed λ = α, i.e. γ·L_f + α·(L_r - ε) (PDU.yaml: True)
    dual_step_size: float = 1.0  # η (PDU.yaml; run.sh: 5 on TOFU, 1 on MUSE)
    dual_warmup_epochs: float = 5.0  # passes over the forget set before λ moves (PDU.yaml; run.sh: 5 TOFU, 3 MUSE)
    retain_loss: Literal["nll", "kl"] = "nll"  # OpenUnlearning retain_loss_type: NLL (GradDiff default)

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.dual_step_size < 0 or self.dual_warmup_epochs < 0:
            raise ValueError("pdu: alpha (the starting multiplier), dual_step_size and dual_warmup_epochs must be "
                             f"0 or more, got {self.alpha}, {self.dual_step_size}, {self.dual_warmup_epochs}")


def logit_margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_f = mean over answer-predicting positions of (max_v z_v - mean_v z_v)² (paper's logit-margin
    flattening loss; OpenUnlearning `PDU.compute_loss`)."""
    lg, _, mask = losses.shift(logits, labels)
    lg = lg.float()
    margin = lg.max(dim=-1).values - lg.mean(dim=-1)
    m = mask.to(margin.dtype)
    return (margin.pow(2) * m).sum() / m.sum().clamp_min(1)


def dual_update(lam: float, retain_loss: float, eps: float, step_size: float) -> float:
    """Projected dual ascent: λ ← max(0, λ + η·(L_r - ε))."""
    return max(0.0, lam + step_size * (retain_loss - eps))


def _warm(cfg: PDUConfig, ctx: StepContext) -> bool:
    """Whether the dual warm-up is over: ``dual_warmup_epochs`` full passes over the forget set done
    (OpenUnlearning enables updates at the end of that epoch)."""
    if cfg.dual_warmup_epochs == 0:
        return True
    if ctx.steps_per_epoch <= 0:
        raise ValueError("pdu: dual_warmup_epochs > 0 needs the run's steps per epoch (StepContext.steps_per_epoch); "
                         "run it through obliviate.unlearn, or set dual_warmup_epochs=0")
    return ctx.step >= cfg.dual_warmup_epochs * ctx.steps_per_epoch


@method("pdu", config=PDUConfig,
        paper="Constrained Entropic Unlearning: A Primal-Dual Framework for Large Language Models",
        arxiv="2506.05314", code="https://github.com/locuslab/open-unlearning", streams=("forget", "retain"),
        needs=("retain_set", "reference_model (retain_loss=kl)"))
def pdu_loss(cfg: PDUConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = γ·mean_t(max z - mean z)² + λ·(L_r - ε), then λ ← max(0, λ + η(L_r - ε)) after warm-up."""
    f = batch["forget"]
    forget = logit_margin_loss(forward_logits(model, f), f["labels"])
    retain = retain_term(cfg.retain_loss, model, batch.get("retain"), ctx)
    if retain is None:
        raise ValueError("pdu needs retain data: its retain loss is the constraint L_r <= retain_eps")
    lam = ctx.state.get(_LAMBDA, cfg.alpha)
    gap = retain - cfg.retain_eps
    loss = cfg.gamma * forget + lam * gap
    if cfg.primal_dual and _warm(cfg, ctx):
        ctx.state[_LAMBDA] = dual_update(lam, retain.item(), cfg.retain_eps, cfg.dual_step_size)
    parts = {"logit_margin": forget.item(), "retain_" + cfg.retain_loss: retain.item(), "dual_lambda": lam}
    return LossOutput(loss, parts)
