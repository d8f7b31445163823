"""Compatibility module: the classifier audit, split by family.

The pure formulas live in ``metrics.classifier_accuracy`` (UA/RA/TA, Avg. Gap), ``metrics.classifier_mia``
(SVC MIA-Efficacy), ``metrics.ulira`` (U-LiRA likelihood ratios) and ``metrics.challenge`` (NeurIPS
2023 challenge score); running models and training shadow models / model arms lives in
``obliviate.auditing.classifier`` and ``obliviate.auditing.shadows``. Importing this module registers
the image metrics, as before; the names below keep ``obliviate.metrics.classification.X`` working.
"""

from __future__ import annotations

from obliviate.auditing.classifier import (TEST_SETS, accuracy, call_unlearn, classification_metrics,  # noqa: F401
                                           evaluation_test_set, mia_efficacy, predict_logits, relearn_time,
                                           retain_accuracy, subtask, test_accuracy, unlearning_accuracy)
from obliviate.auditing.shadows import (RetrainedArm, UliraShadows, challenge_score, train_retrained_arm,  # noqa: F401
                                        train_ulira_shadows, ulira)
from obliviate.metrics.challenge import (CHALLENGE, DELTA, EPSILON_CAP, NUM_THRESHOLDS_PER_UNIT,  # noqa: F401
                                         challenge_score_from_arrays, epsilon_from_rates, epsilon_points,
                                         example_epsilon, forget_quality)
from obliviate.metrics.classifier_accuracy import (GAP_METRICS, SPARSE, accuracy_from_logits, avg_gap,  # noqa: F401
                                                   unlearning_accuracy_from_logits)
from obliviate.metrics.classifier_mia import MIA_FEATURES, mia_features, softmax, svc_mia_efficacy  # noqa: F401
from obliviate.metrics.ulira import (balanced_in_mask, logit_scaled_confidence, tpr_at_fpr,  # noqa: F401
                                     ulira_from_scores, ulira_from_targets, ulira_leave_one_out, ulira_scores)

_call_unlearn = call_unlearn  # old private name, used by benchmarks/ulira_cost.py
