"""Language-model unlearning methods; importing this package registers them."""

from obliviate.methods.llm import ceu, dpo, flat, ga, graddiff, idk, npo, rmu, satimp, simnpo, sure, undial, wga  # noqa: F401
