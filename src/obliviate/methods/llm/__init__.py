"""Language-model unlearning methods; importing this package registers them."""

from obliviate.methods.llm import ga, graddiff, idk, npo, simnpo  # noqa: F401
