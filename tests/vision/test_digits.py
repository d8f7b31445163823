"""The digits image benchmark: data, scenarios, cached original/oracle models and bench_digits."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from obliviate import registry
from obliviate.benchmarks import digits
from obliviate.metrics import classification as cm

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One temporary model cache for the module (models are trained once, ~1 s each)."""
    path = tmp_path_factory.mktemp("obliviate_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OBLIVIATE_CACHE", str(path))
        yield path


def test_split_shapes_and_range():
    train, test = digits.digits_split()
    assert len(train) == 1347 and len(test) == 450  # 1797 images, stratified 75/25
    x, y = train.tensors
    assert x.shape == (1347, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert set(y.tolist()) == set(range(10))


@pytest.mark.parametrize("scenario", ["random10", "class", "class7", "subclass"])
def test_task_scenarios(scenario):
    t = digits.load_digits_task(scenario, seed=0)
    nf, nr = len(t.forget_set), len(t.retain_set)
    assert nf + nr == 1347 and len(t.test_set) == 450 and t.num_classes == 10
    fy = t.forget_set.tensors[1]
    assert set(t.metadata["forget_indices"]).isdisjoint(set(range(1347)) - set(t.metadata["forget_indices"]))
    if scenario == "random10":
        assert nf == 135 and t.forget_class is None
    elif scenario.startswith("class"):
        k = 7 if scenario == "class7" else 3
        assert t.forget_class == k and set(fy.tolist()) == {k}
        assert k not in set(t.retain_set.tensors[1].tolist())
    else:  # thick-stroke half of class 3: the thin half stays in the retain set
        assert t.forget_class is None and set(fy.tolist()) == {3}
        n3 = int((t.retain_set.tensors[1] == 3).sum())
        assert nf == n3 or nf + 1 == n3
        ink_f = t.forget_set.tensors[0].sum((1, 2, 3)).min()
        ink_r = t.retain_set.tensors[0][t.retain_set.tensors[1] == 3].sum((1, 2, 3)).max()
        assert ink_f >= ink_r


def test_task_determinism_and_errors():
    a, b = digits.load_digits_task("random10", 0), digits.load_digits_task("random10", 0)
    assert a.metadata["forget_indices"] == b.metadata["forget_indices"]
    assert torch.equal(a.forget_set.tensors[0], b.forget_set.tensors[0])
    assert digits.load_digits_task("random10", 1).metadata["forget_indices"] != a.metadata["forget_indices"]
    with pytest.raises(ValueError, match="unknown digits scenario"):
        digits.load_digits_task("class12")
    with pytest.raises(ValueError, match="unknown digits arch"):
        digits.build_model("resnet")


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_models_forward_and_embed(arch):
    m = digits.build_model(arch, seed=0)
    x = torch.rand(5, 1, 8, 8)
    assert m(x).shape == (5, 10) and m.embed(x).shape == (5, 64)
    m2 = digits.build_model(arch, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), m2.parameters()))


def test_train_fn_is_deterministic():
    t = digits.load_digits_task("random10", 0)
    small = torch.utils.data.Subset(t.retain_set, range(200))
    fn = dataclasses.replace(digits.DigitsRecipe(), epochs=2)
    m1, m2 = digits.train_with_recipe(small, 3, fn), digits.train_with_recipe(small, 3, fn)
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))


def test_cache_reuse(cache, monkeypatch):
    m1 = digits.original_model("random10", 0)
    files = list((cache / "digits").rglob("*.safetensors"))
    assert len(files) == 1 and "original" in str(files[0])

    def boom(*a, **k):
        raise AssertionError("the cached model should have been loaded, not retrained")

    monkeypatch.setattr(digits, "train_with_recipe", boom)
    m2 = digits.original_model("class", 0)  # the original does not depend on the scenario
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    assert not list((cache / "digits").rglob(".*.safetensors.*"))  # no temp file left behind


def test_original_memorises_and_oracle_generalises(cache):
    t = digits.load_digits_task("random10", 0)
    orig, oracle = digits.original_model("random10", 0), digits.oracle_model("random10", 0)
    ua_o = cm.unlearning_accuracy(orig, t.forget_set).value
    ua_r = cm.unlearning_accuracy(oracle, t.forget_set).value
    ta_r = cm.test_accuracy(oracle, t.test_set).value
    assert ua_o <= 1.0  # the original fits its forget set
    assert ta_r > 93.0
    assert abs(ua_r - (100.0 - ta_r)) < 5.0  # Retrain UA ≈ test error for random forgetting
    assert ua_r > ua_o


def test_class_oracle_never_predicts_forgotten_class(cache):
    t = digits.load_digits_task("class", 0)
    oracle = digits.oracle_model("class", 0)
    assert cm.unlearning_accuracy(oracle, t.forget_set).value == pytest.approx(100.0)
    assert cm.retain_accuracy(oracle, t.retain_set).value > 97.0


def test_benchmark_registered():
    info = registry.get("benchmark", "digits")
    assert info.modalities == ("image",)
    b = info.obj(scenario="class", seed=1)
    assert b.task().forget_class == 3


@dataclasses.dataclass(frozen=True)
class _NoopConfig:
    """Test-only: no parameters."""


def _noop_run(cfg, model, task, ctx):
    """Test-only method: returns the model unchanged."""
    return model


@pytest.fixture
def noop_method():
    """Register `_test_noop` for one test and remove it after, so other tests never see it."""
    from obliviate.methods.vision.base import vision_method

    registry.names("method")  # load the built-ins first
    if "_test_noop" not in registry.names("method"):
        vision_method("_test_noop", config=_NoopConfig, paper="(test only)")(_noop_run)
    yield "_test_noop"
    registry._REGISTRY["method"].pop("_test_noop", None)


def test_bench_digits_smoke(cache, noop_method, tmp_path, capsys):
    from obliviate.benchmarks.digits_bench import bench_digits, print_digits_table
    from obliviate.report.schema import load_report

    out = tmp_path / "digits.json"
    rep = bench_digits([noop_method], scenario="random10", seeds=(0,), ulira_shadows=4, challenge_models=2,
                       out=str(out))
    assert set(rep.models) == {"original", "retrain", noop_method}
    assert rep.models["retrain"].role == "oracle" and rep.models["original"].role == "target"
    assert rep.value("retrain", "avg_gap") == 0.0
    for k in ("unlearning_accuracy", "retain_accuracy", "test_accuracy", "mia_efficacy"):
        assert rep.value(noop_method, k) == pytest.approx(rep.value("original", k))  # a no-op is the original
    m = rep.models[noop_method].metrics["unlearning_accuracy"]
    assert m["n"] == 1 and m["std"] == 0.0 and m["per_seed"] == [m["value"]]
    assert "ulira_tpr_at_1pct_fpr" in rep.models[noop_method].metrics
    u = rep.models["retrain"].metrics["ulira_auc"]["details"]  # measured on shadow targets, not oracle vs oracle
    assert u["n_targets"] == {"unlearned": 4, "retrained": 4} and u["n_examples"] == len(digits.load_digits_task("random10", 0).forget_set)
    assert "per_example_auc_std" in u and "deployed_auc" in u
    assert rep.models[noop_method].run["seconds"] >= 0
    assert load_report(out)["task"]["scenario"] == "random10"
    print_digits_table(rep)
    assert noop_method in capsys.readouterr().out


def test_bench_digits_resumes_finished_methods(cache, noop_method, tmp_path, monkeypatch):
    import obliviate.benchmarks.digits_bench as db

    out = tmp_path / "digits.json"
    first = db.bench_digits([noop_method], scenario="random10", seeds=(0,), ulira_shadows=4, challenge_models=2,
                            out=str(out))
    parts = sorted(p.name for p in (tmp_path / "digits.parts").rglob("*.json"))
    assert len(parts) == 3 and {"seed0_original.json", "seed0_retrain.json"} <= set(parts)
    (mine,) = [p for p in parts if p.startswith(f"seed0_{noop_method}_")]  # + a hash of the method's config

    def must_not_run(*a, **k):
        raise AssertionError("a finished row was recomputed")

    for name in ("train_ulira_shadows", "train_retrained_arm", "ulira", "challenge_score"):
        monkeypatch.setattr(db.sh, name, must_not_run)
    monkeypatch.setattr(db.cm, "call_unlearn", must_not_run)
    again = db.bench_digits([noop_method], scenario="random10", seeds=(0,), ulira_shadows=4, challenge_models=2,
                            out=str(out))
    for row in ("original", "retrain", noop_method):
        for k in ("unlearning_accuracy", "mia_efficacy", "avg_gap", "ulira_auc", "challenge_score"):
            assert again.value(row, k) == pytest.approx(first.value(row, k)), (row, k)
    # different settings are a different bench: nothing is reused
    monkeypatch.undo()
    other = db.bench_digits([noop_method], scenario="random10", seeds=(0,), ulira_shadows=0, challenge_models=0,
                            out=str(out))
    assert "ulira_auc" not in other.models[noop_method].metrics


def _nan_run(cfg, model, task, ctx):
    """Test-only method that diverges: every weight NaN."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    return model


def test_a_diverged_method_is_skipped_with_the_reason_and_the_others_are_audited(cache, noop_method):
    """NaN logits would crash the MIA's SVC and lose every other row: the bench records why instead."""
    from obliviate.benchmarks.digits_bench import bench_digits
    from obliviate.methods.vision.base import vision_method

    vision_method("_test_nan", config=_NoopConfig, paper="(test only)")(_nan_run)
    try:
        rep = bench_digits([noop_method, "_test_nan"], scenario="random10", seeds=(0,), ulira_shadows=0,
                           challenge_models=0)
    finally:
        registry._REGISTRY["method"].pop("_test_nan", None)
    bad = rep.models["_test_nan"]
    assert not bad.metrics and "outputs are not finite" in bad.skipped["run"] and "diverged" in bad.skipped["run"]
    assert rep.value(noop_method, "unlearning_accuracy") == pytest.approx(rep.value("original", "unlearning_accuracy"))
