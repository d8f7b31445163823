"""Compatibility module: U-LiRA for language models moved to ``obliviate.auditing.lm_shadows``
(shadow training is audit orchestration, not a pure metric); the names stay importable from here."""

from obliviate.auditing.lm_shadows import LMShadows, lm_ulira, sequence_phi, train_lm_shadows  # noqa: F401
