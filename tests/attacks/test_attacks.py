import copy
import math

import pytest
import torch

from obliviate import registry
from obliviate.attacks.quantize import quantize_model_rtn, quantize_tensor_rtn, within_half_step
from obliviate.attacks.restor import recovery_ratio


def test_rtn_symmetric_known_answer():
    # 4-bit symmetric, per row: qmax = 7, scale = max|w|/7
    w = torch.tensor([[0.7, -0.35, 0.1, 0.0], [1.4, 0.2, -0.7, 0.3]])
    q = quantize_tensor_rtn(w, bits=4)
    # row 0: scale 0.1 -> [7, -3.5->-4 (round half to even gives -4), 1, 0] * 0.1
    assert torch.allclose(q[0], torch.tensor([0.7, -0.4, 0.1, 0.0]), atol=1e-6)
    # row 1: scale 0.2 -> [7, 1, -3.5->-4, 1.5->2] * 0.2
    assert torch.allclose(q[1], torch.tensor([1.4, 0.2, -0.8, 0.4]), atol=1e-6)


def test_rtn_groupwise_and_asymmetric():
    w = torch.tensor([[1.0, -1.0, 10.0, 0.0]])
    per_row = quantize_tensor_rtn(w, bits=4)
    grouped = quantize_tensor_rtn(w, bits=4, group_size=2)
    # groups keep the small values exact that a row-wide scale (10/7) would distort
    assert torch.allclose(grouped[0, :2], torch.tensor([1.0, -1.0]))
    assert not torch.allclose(per_row[0, :2], torch.tensor([1.0, -1.0]))
    asym = quantize_tensor_rtn(torch.tensor([[0.0, 1.5, 3.0]]), bits=2, symmetric=False)
    # 2-bit asymmetric: scale 1.0, zero 0 -> [0, 2 (1.5 rounds to even), 3]
    assert torch.allclose(asym, torch.tensor([[0.0, 2.0, 3.0]]))


def test_within_half_step_known_answer():
    ref = torch.nn.Sequential(torch.nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        ref[0].weight.copy_(torch.tensor([[0.7, -0.35, 0.1, 0.0]]))  # 4-bit step 0.7 / 7 = 0.1
    moved = copy.deepcopy(ref)
    with torch.no_grad():
        moved[0].weight.add_(torch.tensor([[0.0, -0.04, 0.06, 0.2]]))  # 0, 0.4, 0.6 and 2 steps; the max stays
    out = within_half_step(ref, moved, bits=4, group_size=0)
    assert out["share_within_half_step"] == pytest.approx(0.5)
    assert out["mean_move_in_steps"] == pytest.approx((0.4 + 0.6 + 2.0) / 4)
    assert out["share_changed"] == pytest.approx(0.75) and out["changed_within_half_step"] == pytest.approx(1 / 3)
    # a move under half a step rounds back onto the reference's grid point; the 0.6-step move does not
    q_ref, q_moved = quantize_tensor_rtn(ref[0].weight, 4)[0], quantize_tensor_rtn(moved[0].weight, 4)[0]
    assert torch.allclose(q_moved[:2], q_ref[:2]) and not torch.isclose(q_moved[2], q_ref[2])


def test_8bit_changes_weights_less_than_4bit(tiny_model):
    q8, n8 = quantize_model_rtn(tiny_model, 8)
    q4, n4 = quantize_model_rtn(tiny_model, 4)
    assert n8 == n4 > 0
    head = tiny_model.get_output_embeddings().weight
    assert torch.equal(q4.get_output_embeddings().weight, head), "lm_head stays full precision by default"

    def dist(m):
        return sum((a - b).abs().sum().item() for a, b in zip(m.parameters(), tiny_model.parameters()))

    assert 0 < dist(q8) < dist(q4)


@pytest.mark.parametrize("name", ["quantize_int8", "quantize_int4", "relearn", "paraphrase", "jailbreak_prefix"])
def test_attack_contract(name, tiny_model, tiny_tokenizer, tiny_task):
    info = registry.get("attack", name)
    assert info.paper
    kwargs = {"steps": 2} if name == "relearn" else {}
    res = info.obj(tiny_model, tiny_task, tiny_tokenizer, **kwargs)
    assert len(res.task.forget) == len(tiny_task.forget)
    if name.startswith("paraphrase"):
        assert res.task.forget[0].question == tiny_task.forget[0].question_paraphrases[-1]
    if name == "jailbreak_prefix":
        assert res.task.forget[0].question.endswith(tiny_task.forget[0].question)
    if name == "relearn":
        assert any(not torch.equal(a, b) for a, b in zip(res.model.parameters(), tiny_model.parameters()))


def test_recovery_ratio():
    assert recovery_ratio(0.9, 0.1, 0.5) == pytest.approx(0.5)
    assert math.isnan(recovery_ratio(0.5, 0.5, 0.5))


def test_restor_runs_on_tiny_task(tiny_model, tiny_tokenizer, tiny_task):
    res = registry.get("attack", "restor").obj(tiny_model, tiny_task, tiny_tokenizer, n_facts=6, corrupt_steps=3,
                                               unlearn_train={"max_steps": 2, "batch_size": 4, "grad_accum": 1})
    for k in ("acc_clean", "acc_corrupted", "acc_unlearned", "recovery"):
        assert k in res.details
