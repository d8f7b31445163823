"""Forget-MI: known answers for each loss term and the hinge caps, the identity, the contract and
(slow) behaviour on the built-in multimodal benchmark."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import TensorDataset

from obliviate import registry
from obliviate.benchmarks.multimodal import LateFusionModel, MultimodalTask, synonym_table
from obliviate.config import ConfigError
from obliviate.methods.multimodal import forget_mi as fm
from obliviate.methods.vision.base import VisionContext


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread (conftest sets 2, which only adds contention on a shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _out(img, txt, joint):
    return SimpleNamespace(img_emb=torch.tensor(img, dtype=torch.float64), txt_emb=torch.tensor(txt, dtype=torch.float64),
                           joint_emb=torch.tensor(joint, dtype=torch.float64))


# forget batch of 2: record 0's [i, t] is (3, 0 | 0, 0) vs noisy (0, 0 | 0, 4) -> ‖·‖ = 5; record 1 equal -> 0
F_OUT = _out([[3, 0], [1, 1]], [[0, 0], [2, 2]], [[1, 0], [0, 0]])
F_NOISY = _out([[0, 0], [1, 1]], [[0, 4], [2, 2]], [[1, 0], [0, 2]])  # joint: 0 and 2 -> MU = 1
R_OUT = _out([[6, 8]], [[0, 0]], [[3, 4]])  # UR = ‖(6, 8, 0, 0)‖ = 10, MR = ‖(3, 4)‖ = 5
R_REF = _out([[0, 0]], [[0, 0]], [[0, 0]])


def test_distance_terms_hand_computed():
    assert fm.unimodal_distance(F_OUT, F_NOISY).item() == pytest.approx(2.5)  # UU = (5 + 0) / 2
    assert fm.joint_distance(F_OUT, F_NOISY).item() == pytest.approx(1.0)  # MU = (0 + 2) / 2
    assert fm.unimodal_distance(R_OUT, R_REF).item() == pytest.approx(10.0)  # UR
    assert fm.joint_distance(R_OUT, R_REF).item() == pytest.approx(5.0)  # MR
    a = torch.zeros(3, 4, requires_grad=True)
    fm.mean_euclidean(a, torch.zeros(3, 4)).backward()
    assert torch.equal(a.grad, torch.zeros(3, 4))  # no NaN at a = b: the original is a stationary point


def test_weights_normalised_as_the_paper():
    assert fm.normalised_weights(fm.ForgetMIConfig()) == pytest.approx((1 / 6, 1 / 6, 1 / 3, 1 / 3))
    with pytest.raises(ValueError, match="positive sum"):
        fm.normalised_weights(fm.ForgetMIConfig(alpha=0, beta=0, theta=0, gamma=0))


def test_total_loss_push_pull_and_caps():
    w = (1 / 6, 1 / 6, 1 / 3, 1 / 3)
    # uncapped push: (1/6)·10 − (1/6)·2.5 − (1/3)·1 + (1/3)·5
    loss, parts = fm.forget_mi_loss(F_OUT, F_NOISY, R_OUT, R_REF, w, "push_from_noisy")
    assert loss.item() == pytest.approx(10 / 6 - 2.5 / 6 - 1 / 3 + 5 / 3)
    assert parts == pytest.approx({"uu": 2.5, "mu": 1.0, "ur": 10.0, "mr": 5.0, "loss": loss.item()})
    pull, _ = fm.forget_mi_loss(F_OUT, F_NOISY, R_OUT, R_REF, w, "pull_to_noisy")
    assert pull.item() - loss.item() == pytest.approx(2 * (2.5 / 6 + 1 / 3))  # only the forget sign flips
    # caps (c_UR, c_MR) = (3, 7): UR = 10 is capped at 3, MR = 5 stays
    capped, parts = fm.forget_mi_loss(F_OUT, F_NOISY, R_OUT, R_REF, w, "push_from_noisy", caps=(3.0, 7.0))
    assert capped.item() == pytest.approx(3 / 6 - 2.5 / 6 - 1 / 3 + 5 / 3)
    assert parts["ur"] == pytest.approx(10.0)  # logged uncapped
    with pytest.raises(ValueError, match="push_from_noisy"):
        fm.forget_mi_loss(F_OUT, F_NOISY, R_OUT, R_REF, w, "push")


def test_hinge_cap_gradient():
    v = torch.tensor(5.0, requires_grad=True)
    fm.hinge_cap(v, 3.0).backward()
    assert v.grad.item() == 0.0  # above the cap: no gradient (upstream torch.minimum)
    v = torch.tensor(2.0, requires_grad=True)
    out = fm.hinge_cap(v, 3.0)
    out.backward()
    assert out.item() == 2.0 and v.grad.item() == 1.0
    assert fm.hinge_cap(v, None) is v


def test_synonym_swap():
    table = synonym_table()
    assert table[:6] == [1, 2, 0, 4, 5, 3] and all(t // 3 == s // 3 for t, s in enumerate(table))
    tok = torch.arange(30).reshape(5, 6)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(fm.synonym_swap(tok, table, 0.0, g), tok)
    assert torch.equal(fm.synonym_swap(tok, table, 1.0, g), torch.tensor(table).reshape(5, 6))
    half = fm.synonym_swap(tok.repeat(40, 1), table, 0.5, g)
    assert 0.4 < (half != tok.repeat(40, 1)).float().mean().item() < 0.6
    with pytest.raises(ValueError, match="synonym table"):
        fm.synonym_swap(torch.tensor([[31]]), table, 0.5, g)


def _tiny_task(n_forget=12, n_retain=40, seed=0):
    g = torch.Generator().manual_seed(seed)

    def ds(n):
        return TensorDataset(torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 30, (n, 6), generator=g),
                             torch.randint(0, 10, (n,), generator=g))

    return MultimodalTask("tiny", ds(n_forget), ds(n_retain), ds(20), 10, synonym_table(), [0])


def _tiny_model():
    torch.manual_seed(0)
    return LateFusionModel().eval()


def test_epoch_zero_records_caps_and_does_not_update():
    model, task = _tiny_model(), _tiny_task()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hist = []
    out = fm.run(fm.ForgetMIConfig(epochs=1), model, task, VisionContext(seed=0), history=hist)
    assert all(torch.equal(before[k], v) for k, v in out.state_dict().items())
    # at θ = θ_o the retain distances are 0, so both caps are 0 + margin
    assert hist[0]["ur"] == 0.0 and hist[0]["mr"] == 0.0
    assert hist[0]["cap_ur"] == 1.0 and hist[0]["cap_mr"] == 1.0
    hist = []
    fm.run(fm.ForgetMIConfig(epochs=2, hinge_margin=0.25), model, task, VisionContext(seed=0), history=hist)
    assert hist[1]["cap_ur"] == 0.25 and hist[1]["epoch"] == 1


def test_identity_forget_weights_zero_keep_the_original():
    """Spec §10: with β = θ = 0 only the retain distances remain, which are 0 at θ_o with zero
    gradient, so θ_o is a fixed point (weight decay off, as it would shrink any weights)."""
    model, task = _tiny_model(), _tiny_task()
    cfg = fm.ForgetMIConfig(beta=0.0, theta=0.0, weight_decay=0.0, epochs=4, lr=1e-2)
    out = fm.run(cfg, model, task, VisionContext(seed=0))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in out.state_dict().items())
    # ... and with the forget weights on, the same run moves the weights
    out = fm.run(fm.ForgetMIConfig(epochs=4, lr=1e-2, weight_decay=0.0), model, task, VisionContext(seed=0))
    assert any(not torch.equal(model.state_dict()[k], v) for k, v in out.state_dict().items())


class _Recording(LateFusionModel):
    """Records the images every no-grad forward sees: θ_o's forwards on the noisy copy and D_r."""

    seen: list = []

    def forward(self, image, tokens):
        if not torch.is_grad_enabled():
            _Recording.seen.append(image.clone())
        return super().forward(image, tokens)


@pytest.mark.parametrize("noise", ["per_epoch", "fixed"])
def test_noisy_copy_drawn_once_or_per_epoch_and_clipped(noise):
    """θ_o sees the noisy forget images first in every batch (n_forget 12 <= batch 16: one batch per
    epoch). "fixed" gives the same noisy copy every epoch, "per_epoch" a new draw; both clipped to [0, 1]."""
    torch.manual_seed(0)
    model, task = _Recording().eval(), _tiny_task()
    f_img = task.forget_set.tensors[0]
    _Recording.seen = []
    fm.run(fm.ForgetMIConfig(epochs=3, image_noise=noise, image_noise_std=0.5), model, task, VisionContext(seed=0))
    noisy = _Recording.seen[0::2]  # (noisy forget, retain) per step
    assert len(noisy) == 3 and all(x.shape == f_img.shape for x in noisy)
    assert all(x.min() >= 0.0 and x.max() <= 1.0 for x in noisy)
    assert (noisy[0] - f_img).abs().mean() > 0.1  # noise was added
    assert torch.equal(noisy[0], noisy[1]) == (noise == "fixed") and torch.equal(noisy[1], noisy[2]) == (noise == "fixed")
    _Recording.seen = []
    fm.run(fm.ForgetMIConfig(epochs=1, image_noise_std=0.5, image_clip=None), model, task, VisionContext(seed=0))
    assert _Recording.seen[0].min() < 0.0 and _Recording.seen[0].max() > 1.0  # image_clip=None: unclipped


@pytest.mark.parametrize("mode", ["push_from_noisy", "pull_to_noisy"])
@pytest.mark.parametrize("step", ["batch", "epoch"])
def test_contract_runs_and_changes_weights(mode, step):
    info = registry.get("method", "forget_mi")
    assert info.paper and info.arxiv == "2506.23145" and info.code and info.modalities == ("multimodal",)
    assert "forget_mi" not in registry.names("method", "image") + registry.names("method", "text")
    model, task = _tiny_model(), _tiny_task()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = info.obj.make_config({"mode": mode, "optimizer_step": step, "epochs": 3})
    hist = []
    out = info.obj.run(cfg, model, task, VisionContext(seed=0), history=hist)
    assert len(hist) == 3 and all(math.isfinite(h["loss"]) for h in hist)
    assert any(not torch.equal(before[k], v) for k, v in out.state_dict().items())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    assert not out.training


def test_config_and_task_errors():
    spec = registry.get("method", "forget_mi").obj
    with pytest.raises(ConfigError, match="mode"):
        spec.make_config({"mode": "push"})
    with pytest.raises(ConfigError, match="image_noise"):
        spec.make_config({"image_noise": "once"})
    task = _tiny_task()
    task.synonyms = None
    with pytest.raises(ValueError, match="synonyms"):
        fm.run(fm.ForgetMIConfig(epochs=1), _tiny_model(), task, VisionContext())
    empty = _tiny_task(n_forget=0)
    with pytest.raises(ValueError, match="forget_set is empty"):
        fm.run(fm.ForgetMIConfig(epochs=1), _tiny_model(), empty, VisionContext())


@pytest.mark.slow
def test_behaviour_forgets_patients_on_builtin_benchmark(bench_cache, monkeypatch, tmp_path):
    """Forget-MI (the pull_to_noisy bench variant) takes forget AUC/F1 and the membership evidence of
    the forgotten patients to the exact retrain oracle's level while test AUC stays near the oracle's.

    Thresholds from `obliviate bench --benchmark multimodal --split forget10 --seeds "[0,1,2]"`
    (2026-12-02), per seed 0 / 1 / 2: D_f AUC 0.908 / 0.914 / 0.931 (retrain 0.906 / 0.916 / 0.899;
    gap <= 0.032, bound 0.05), D_f F1 0.526-0.571 (original 1.0; drop >= 0.43, bound 0.3), MIA
    entropy 0.489-0.552 (original 0.948-0.963; drop >= 0.40, bound 0.3), MIA loss 0.541-0.593
    (original >= 0.993; drop >= 0.40, bound 0.3), D_t AUC 0.900-0.909 (retrain gap 0.011-0.023, bound
    0.035). Redrawing the noise every epoch leaves D_f AUC at 0.996 (3 seeds; gap 0.09) and the paper's
    hinge margin of 1 drops D_t AUC to 0.80: each fails a bound."""
    monkeypatch.setenv("OBLIVIATE_CACHE", bench_cache)
    from obliviate.benchmarks.multimodal_bench import VARIANTS, bench_multimodal

    rep = bench_multimodal({"forget_mi_pull": VARIANTS["forget_mi_pull"]}, "forget10", seeds=[0],
                           features=("entropy", "loss"), out=str(tmp_path / "report.json"))
    assert "forget_mi_pull" in json.loads((tmp_path / "report.json").read_text())["verdict"]["models"]
    assert "D_f AUC" in (tmp_path / "report.html").read_text() and (tmp_path / "report.md").exists()
    m = {row: {k: d["value"] for k, d in e.metrics.items()} for row, e in rep.models.items()}
    orig, retrain, fmi = m["original"], m["retrain"], m["forget_mi_pull"]
    assert orig["forget_f1"] - retrain["forget_f1"] > 0.2  # the patients are memorised: there is something to forget
    assert abs(fmi["forget_auc"] - retrain["forget_auc"]) < 0.05
    assert fmi["forget_f1"] < orig["forget_f1"] - 0.3
    assert fmi["mia_svc_entropy"] < orig["mia_svc_entropy"] - 0.3
    assert fmi["mia_svc_loss"] < orig["mia_svc_loss"] - 0.3
    assert abs(fmi["test_auc"] - retrain["test_auc"]) < 0.035
