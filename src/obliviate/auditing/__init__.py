"""Audit orchestration for classifiers and language models: running models to build the arrays the
pure metrics in ``obliviate.metrics`` consume, and training the shadow models / model arms that some
audits need (U-LiRA, the NeurIPS 2023 challenge score, relearn time).

Named ``auditing`` rather than ``audit`` because ``obliviate.audit`` is the public audit function
(``obliviate/__init__.py``); a subpackage of the same name would replace that attribute on import.

- ``auditing.classifier``: scored views of an image classifier (logits on D_f/D_r/D_t), UA/RA/TA,
  MIA-Efficacy and relearn time on a model, the class-wise test-set definitions;
- ``auditing.shadows``: U-LiRA shadows and the challenge score's model arms for classifiers;
- ``auditing.lm_shadows``: U-LiRA shadows for language models.
"""
