"""Language-model unlearning methods; importing this package registers them."""

from obliviate.methods.llm import (  # noqa: F401
    ceu, dp2, dpo, eco, finetune, flat, ga, graddiff, grin, idk, npo, pdu, retrain, rmu, satimp, simnpo, sure,
    task_vector, undial, wga, whp,
)
