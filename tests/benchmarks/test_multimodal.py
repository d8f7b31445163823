"""The built-in multimodal benchmark: deterministic patients, patient-level splits, the fusion
model, the safetensors cache with its exact oracle, and (slow) the CLI table."""

import numpy as np
import pytest
import torch

from obliviate import registry
from obliviate.benchmarks import multimodal as mm


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread (conftest sets 2, which only adds contention on a shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_records_are_deterministic_patients():
    r = mm.records()
    assert len(r.labels) == 1797 and r.images.shape == (1797, 1, 8, 8) and r.tokens.shape == (1797, 6)
    counts = np.bincount(r.patient)
    assert counts.min() >= 1 and counts.max() <= 6 and len(counts) == 400
    assert r.tokens.min() >= 0 and r.tokens.max() < mm.VOCAB
    assert 0.0 <= r.images.min() and r.images.max() <= 1.0
    # the style pair (tokens 2, 3) is the same in every report of a patient
    for p in range(0, 400, 37):
        rows = r.tokens[r.patient == p]
        assert (rows[:, 2:4] == rows[0, 2:4]).all()
    # label tokens correlate with the label: token 3c..3c+2 in slot 0 far above the 1/10 chance
    own = (r.tokens[:, 0] // 3 == r.labels).mean()
    assert 0.45 < own < 0.65
    mm.records.cache_clear()
    again = mm.records()
    assert np.array_equal(again.tokens, r.tokens) and np.array_equal(again.images, r.images)


@pytest.mark.parametrize("split,frac", [("forget03", 0.03), ("forget06", 0.06), ("forget10", 0.10)])
def test_splits_forget_whole_patients(split, frac):
    r = mm.records()
    task = mm.load_multimodal_task(split, seed=0)
    n_train_pat = task.metadata["n_train_patients"]
    assert len(task.forget_patients) == round(frac * n_train_pat)
    assert not set(task.forget_patients) & set(r.test_patients.tolist())
    n = len(task.forget_set) + len(task.retain_set) + len(task.test_set)
    assert n == 1797
    # every record of a forgotten patient is in the forget set
    assert len(task.forget_set) == int(np.isin(r.patient, task.forget_patients).sum())
    assert len(task.test_set) == int(np.isin(r.patient, r.test_patients).sum())
    other = mm.load_multimodal_task(split, seed=1)
    assert other.forget_patients != task.forget_patients
    assert task.synonyms == mm.synonym_table()


def test_unknown_split():
    with pytest.raises(ValueError, match="forget03, forget06, forget10"):
        mm.load_multimodal_task("forget05")
    with pytest.raises(ValueError, match="forget10"):
        registry.get("benchmark", "multimodal").obj("forget5")


def test_fusion_model_contract_and_one_gate():
    model = mm.build_model(0)
    img, tok = torch.rand(4, 1, 8, 8), torch.randint(0, 30, (4, 6))
    out = model(img, tok)
    assert out.img_emb.shape == out.txt_emb.shape == out.joint_emb.shape == (4, 32)
    assert out.logits.shape == out.img_logits.shape == out.txt_logits.shape == (4, 10)
    z = torch.sigmoid(model.gate(torch.cat([out.img_emb, out.txt_emb], -1)))
    assert torch.allclose(out.joint_emb, z * out.img_emb + (1 - z) * out.txt_emb)
    assert torch.allclose(out.logits, model.head(out.joint_emb))


def test_cache_and_exact_oracle(tmp_path, monkeypatch):
    monkeypatch.setenv("OBLIVIATE_CACHE", str(tmp_path))
    recipe = mm.MultimodalRecipe(epochs=1)
    orig = mm.original_model(0, recipe)
    files = list(tmp_path.rglob("*.safetensors"))
    assert len(files) == 1 and "original" in str(files[0])
    again = mm.original_model(0, recipe)  # loaded, not retrained
    assert all(torch.equal(a, b) for a, b in zip(orig.state_dict().values(), again.state_dict().values()))
    oracle = mm.oracle_model("forget03", 0, recipe)
    retrained = mm.train_fusion(mm.load_multimodal_task("forget03", 0).retain_set, 0, recipe)
    assert all(torch.equal(a, b) for a, b in zip(oracle.state_dict().values(), retrained.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(oracle.state_dict().values(), orig.state_dict().values()))
    assert recipe.key() != mm.MultimodalRecipe().key()


def test_registered_benchmark():
    info = registry.get("benchmark", "multimodal")
    assert info.arxiv == "2506.23145" and info.modalities == ("multimodal",)
    b = info.obj("forget06", 2)
    assert b.task().name == "multimodal/forget06" and b.task().metadata["seed"] == 2


@pytest.mark.slow
def test_cli_bench_prints_table(bench_cache, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OBLIVIATE_CACHE", bench_cache)
    from obliviate.cli import main

    main(["bench", "--benchmark", "multimodal", "--split", "forget03", "--seeds", "[0]", "--methods",
          "[forget_mi_pull]", "--out_dir", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert "multimodal/forget03" in out and "D_f AUC" in out and "forget_mi_pull" in out and "retrain" in out
    import json

    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert set(rep["models"]) == {"original", "retrain", "forget_mi_pull"}
    assert rep["models"]["forget_mi_pull"]["run"]["config"]["mode"] == "pull_to_noisy"
