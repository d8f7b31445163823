"""Process-count invariance: a run on 2 processes (accelerate launch, gloo on CPU) equals the run on
1 process with twice the gradient accumulation, step by step; outputs are written once; the audit
is the 1-process audit; a run killed after a checkpoint resumes under the same 2 processes. The same
holds sharded with FSDP2 (launched with presets/accelerate/fsdp.yaml): weights, gradients,
optimizer state and the reference model in shards, checkpoints and the saved model gathered whole;
under DeepSpeed ZeRO-2 (presets/accelerate/deepspeed_zero2.yaml): DeepSpeed's engine, masters,
gradients and optimizer state partitioned, checkpoints holding them whole; and under ZeRO-3
(deepspeed_zero3.yaml): the parameters partitioned too, the reference model in an engine of its own.

One launch runs every 2-process case (tests/train/distributed_worker.py, through the real CLI), a
second one the FSDP cases, a third the ZeRO-2 and a fourth the ZeRO-3 cases; the 1-process runs go
through the same CLI in this process.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from obliviate.cli import main

pytestmark = pytest.mark.slow  # one 2-process launch plus the 1-process runs: ~1 minute on 2 cores

BASE = ["lr=1e-3", "progress=false", "probe_every=1", "checkpoint_every=1"]
# name: (method args, train options, grad_accum with 2 processes); the 1-process run doubles grad_accum.
CASES = {
    "ga_3_steps": (["--method", "ga"], ["max_steps=3", "batch_size=2"], 1),  # 3 steps: not divisible by 2 processes
    "ga_epoch": (["--method", "ga"], ["epochs=1", "batch_size=3"], 1),  # 8 items / 3 = 3 micro-batches an epoch
    # the guards' best step (1: GA raises the retain NLL) is restored at the end (under ZeRO: into the masters)
    "ga_best": (["--method", "ga"], ["max_steps=3", "batch_size=2", "best_rule=min_retain_nll"], 1),
    "npo": (["--method", "npo"], ["max_steps=2", "batch_size=2"], 2),  # reference model; 2 micro-batches per rank (no_sync)
    "graddiff_kl": (["--method", "graddiff", "--set", "retain_loss=kl"], ["max_steps=2", "batch_size=2"], 1),
    "npo_lora": (["--method", "npo"], ["max_steps=2", "batch_size=2", "lora=true", "lora_r=4"], 1),
    # a prepare hook (gradient-ratio mask, seeded noise, gradient hooks); FSDP refuses it (exit 2)
    "grin": (["--method", "grin"], ["max_steps=2", "batch_size=2"], 1),
}
FSDP_CASES = [n for n in CASES if n != "grin"]
RESUME_TRAIN = dict(max_steps=4, batch_size=2, grad_accum=1, lr=1e-3, progress=False, probe_every=1,
                    checkpoint_every=2)


def _train_args(opts: list[str]) -> list[str]:
    return [a for o in opts for a in ("--train", o)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, _tiny_model_master, tiny_tokenizer, tiny_task):
    from obliviate.models.loading import save_model_atomic

    work = tmp_path_factory.mktemp("dist")
    model_dir = save_model_atomic(_tiny_model_master, tiny_tokenizer, work / "model")
    files = {}
    for split in ("forget", "retain"):
        files[split] = work / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps({"question": i.question, "answer": i.answer}) + "\n"
                                        for i in getattr(tiny_task, split)))
    common = ["--model", str(model_dir), "--forget", str(files["forget"]), "--retain", str(files["retain"])]
    audit = ["audit", "--model", f"m={work / 'one' / 'ga_3_steps'}", "--forget", str(files["forget"]),
             "--retain", str(files["retain"]), "--max_new_tokens", "4"]
    two = {name: ["unlearn", *m, *common, *_train_args(BASE + t + [f"grad_accum={a}"])]
           for name, (m, t, a) in CASES.items()}
    (work / "cases.json").write_text(json.dumps({"unlearn": two, "audit": audit, "model": str(model_dir),
                                                 "forget": str(files["forget"]), "retain": str(files["retain"]),
                                                 "resume_train": RESUME_TRAIN}))
    for name, (m, t, a) in CASES.items():  # 1 process, twice the accumulation
        main(["unlearn", *m, *common, *_train_args(BASE + t + [f"grad_accum={2 * a}"]),
              "--out", str(work / "one" / name)])
    main(audit + ["--out", str(work / "one" / "audit.json")])

    # --multi_gpu is accelerate's multi-process launcher (torchrun); on a machine without CUDA it
    # starts gloo CPU processes. (`--cpu --num_processes 2` would start one process.)
    _launch(work, ["--multi_gpu"], "ddp")
    return work


def _launch(work: Path, how: list[str], mode: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    for phase in ("main", "resume"):  # the cases and a killed run, then a new launch that resumes it
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *how, "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), str(Path(__file__).parent / "distributed_worker.py"),
               str(work), mode, phase]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, phase + ": " + proc.stdout[-3000:] + proc.stderr[-5000:]


@pytest.fixture(scope="module")
def fsdp_runs(runs):
    """The same cases, launched as a GPU user would with the shipped FSDP preset (precision no: gloo on CPU)."""
    from obliviate.presets import accelerate_config

    _launch(runs, ["--config_file", str(accelerate_config("fsdp"))], "fsdp")
    return runs


@pytest.fixture(scope="module")
def zero_runs(runs):
    """The same cases under DeepSpeed ZeRO-2 (the shipped preset, precision no), DeepSpeed's own engine."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is the optional extra obliviate[deepspeed] (in .[test])")
    from obliviate.presets import accelerate_config

    _launch(runs, ["--config_file", str(accelerate_config("deepspeed_zero2"))], "deepspeed")
    return runs


@pytest.fixture(scope="module")
def zero3_runs(runs):
    """The same cases under DeepSpeed ZeRO-3 (parameters partitioned, the reference model in its own engine)."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is the optional extra obliviate[deepspeed] (in .[test])")
    from obliviate.presets import accelerate_config

    _launch(runs, ["--config_file", str(accelerate_config("deepspeed_zero3"))], "deepspeed3")
    return runs


def _run(work: Path, n: str, name: str) -> tuple[dict, dict]:
    out = work / n / name
    return json.loads((out / "run.json").read_text()), load_file(str(out / "model.safetensors"))


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_equal_one_with_twice_the_accumulation(runs, name):
    _same_run(runs, "two", name)


@pytest.mark.parametrize("name", FSDP_CASES)
def test_two_fsdp_processes_equal_one_with_twice_the_accumulation(fsdp_runs, name):
    one, fsdp = _same_run(fsdp_runs, "fsdp", name)
    # Sharded: the main process held about half of the weights (and of the reference model), not all
    assert fsdp["log"]["sharding"] == "fsdp" and one["log"]["sharding"] == "none"
    assert 0.4 < fsdp["log"]["params_per_process"] / one["log"]["params_per_process"] < 0.6, (fsdp["log"], one["log"])


def test_fsdp_shards_writes_once_and_refuses_gradient_hooks(fsdp_runs):
    for rank in (0, 1):
        rec = json.loads((fsdp_runs / "fsdp" / f"codes-{rank}.json").read_text())
        assert rec["distributed"] == "DistributedType.FSDP" and rec["world"] == "2", rec
        assert rec["codes"] == {**{n: 0 for n in FSDP_CASES}, "grin": 2}, rec
    assert not (fsdp_runs / "fsdp" / "grin").exists()
    _written_once_whole(fsdp_runs, "fsdp", FSDP_CASES)


def _written_once_whole(runs: Path, where: str, names: list[str]) -> None:
    original = load_file(str(runs / "model" / "model.safetensors"))
    for name in names:  # whole tensors in the model's dtype, written by the main process only
        _, w = _run(runs, where, name)
        assert {k: (v.shape, v.dtype) for k, v in w.items()} == {k: (v.shape, v.dtype) for k, v in original.items()}
        assert sorted(p.name for p in (runs / where).glob(f".{name}*")) == []


@pytest.mark.parametrize("name", list(CASES))
def test_two_zero2_processes_equal_one_with_twice_the_accumulation(zero_runs, name):
    one, zero = _same_run(zero_runs, "deepspeed", name)
    # ZeRO-2 partitions the fp32 masters, gradients and optimizer state; each process keeps the whole model
    assert zero["log"]["sharding"] == "zero2" and zero["log"]["params_per_process"] == one["log"]["params_per_process"]


@pytest.mark.parametrize("name", FSDP_CASES)
def test_two_zero3_processes_equal_one_with_twice_the_accumulation(zero3_runs, name):
    one, zero = _same_run(zero3_runs, "deepspeed3", name)
    # ZeRO-3 partitions the parameters too: the main process held about half of them (and of the reference)
    assert zero["log"]["sharding"] == "zero3"
    assert 0.4 < zero["log"]["params_per_process"] / one["log"]["params_per_process"] < 0.6, (zero["log"], one["log"])


def test_zero3_partitions_writes_once_and_refuses_gradient_hooks(zero3_runs):
    for rank in (0, 1):
        rec = json.loads((zero3_runs / "deepspeed3" / f"codes-{rank}.json").read_text())
        assert rec["distributed"] == "DistributedType.DEEPSPEED" and rec["world"] == "2", rec
        assert rec["engine"] == "DeepSpeedEngine" and rec["codes"] == {**{n: 0 for n in FSDP_CASES}, "grin": 2}, rec
    assert not (zero3_runs / "deepspeed3" / "grin").exists()
    _written_once_whole(zero3_runs, "deepspeed3", FSDP_CASES)


def test_zero2_runs_deepspeeds_engine_on_every_rank_and_writes_once(zero_runs):
    for rank in (0, 1):
        rec = json.loads((zero_runs / "deepspeed" / f"codes-{rank}.json").read_text())
        assert rec["distributed"] == "DistributedType.DEEPSPEED" and rec["world"] == "2", rec
        assert rec["engine"] == "DeepSpeedEngine" and rec["codes"] == {n: 0 for n in CASES}, rec
    _written_once_whole(zero_runs, "deepspeed", list(CASES))


def _same_run(runs: Path, where: str, name: str) -> tuple[dict, dict]:
    """The 1-process run and the 2-process run ``where`` of ``name``: the same losses and weights."""
    one, w1 = _run(runs, "one", name)
    two, w2 = _run(runs, where, name)
    assert one["log"]["num_processes"] == 1 and two["log"]["num_processes"] == 2
    h1, h2 = one["log"]["history"], two["log"]["history"]
    assert len(h1) == len(h2) == one["log"]["total_steps"] == two["log"]["total_steps"] >= 2
    for r1, r2 in zip(h1, h2):
        assert r1.keys() == r2.keys()
        for k in r1:
            assert math.isclose(r1[k], r2[k], rel_tol=1e-5, abs_tol=1e-7), (name, r1["step"], k, r1[k], r2[k])
    for p1, p2 in zip(one["log"]["probes"], two["log"]["probes"]):
        assert p1["step"] == p2["step"] and math.isclose(p1["forget_nll"], p2["forget_nll"], rel_tol=1e-5)
    assert one["log"]["best_step"] == two["log"]["best_step"] == (1 if name == "ga_best" else None)
    assert w1.keys() == w2.keys()
    diff = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    assert diff < 1e-5, f"{name}: weights differ by {diff}"
    # Trained at all (a run that did nothing would match trivially)
    assert any(not torch.equal(w1[k], load_file(str(runs / "model" / "model.safetensors"))[k]) for k in w1)
    return one, two


def test_outputs_are_written_once_and_every_rank_succeeds(runs):
    for rank in (0, 1):
        rec = json.loads((runs / "two" / f"codes-{rank}.json").read_text())
        assert rec["world"] == "2" and set(rec["codes"].values()) == {0}, rec
    for name in CASES:  # the checkpoints beside the output were removed after the main process saved it
        assert not (runs / "two" / f".{name}.checkpoints").exists()
        assert sorted(p.name for p in (runs / "two").glob(f".{name}*")) == []


def _numbers(obj, path=""):
    """Every number in a report, by path, leaving out what records when, how long and how it was launched."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("created", "seconds", "environment", "versions", "timing", "wall_seconds", "provenance"):
                yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    else:
        yield path, obj


def test_the_two_process_audit_is_the_one_process_audit(runs):
    a1 = dict(_numbers(json.loads((runs / "one" / "audit.json").read_text())))
    a2 = dict(_numbers(json.loads((runs / "two" / "audit.json").read_text())))
    assert a1.keys() == a2.keys() and any(".metrics." in k for k in a1)
    for k, v in a1.items():
        if isinstance(v, float) and isinstance(a2[k], float):
            assert math.isclose(v, a2[k], rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(v) and math.isnan(a2[k])), k
        else:
            assert v == a2[k], k


@pytest.mark.parametrize("where", ["two", "fsdp", "deepspeed", "deepspeed3"])
def test_a_killed_two_process_run_resumes_to_the_uninterrupted_one(where, request, _tiny_model_master, tiny_tokenizer,
                                                                   tiny_task):
    import copy

    from obliviate import registry
    from obliviate.train.loop import TrainConfig, run_unlearning

    runs = request.getfixturevalue({"two": "runs", "fsdp": "fsdp_runs", "deepspeed": "zero_runs",
                                    "deepspeed3": "zero3_runs"}[where])
    rec = json.loads((runs / where / "resume-log.json").read_text())
    assert rec["resumed_from"] == 2
    npo = registry.get("method", "npo").obj
    cfg = TrainConfig(**{**RESUME_TRAIN, "grad_accum": 2, "checkpoint_every": 0})
    full, log = run_unlearning(copy.deepcopy(_tiny_model_master), tiny_tokenizer, tiny_task, npo, npo.make_config(),
                               cfg, needs_reference=True)
    for r1, r2 in zip(log.history, rec["history"]):
        assert math.isclose(r1["loss"], r2["loss"], rel_tol=1e-5), (r1, r2)
    resumed = load_file(str(runs / where / "resumed.safetensors"))
    diff = max(float((v - resumed[k]).abs().max()) for k, v in full.state_dict().items())
    assert diff < 1e-5


@pytest.mark.parametrize("kind, extra, match", [
    ("FSDP", {"fsdp_plugin": type("P", (), {"fsdp_version": 1})()}, "FSDP version 1"),
    ("DEEPSPEED", {"deepspeed_plugin": type("P", (), {"zero_stage": 0})()}, "zero_stage 1, 2 or 3"),
])
def test_unsupported_sharding_is_refused_before_any_work(kind, extra, match, monkeypatch):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from obliviate.config import ConfigError
    from obliviate.train import loop

    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())  # "deepspeed is installed"
    acc = SimpleNamespace(distributed_type=DistributedType[kind], state=SimpleNamespace(**extra))
    with pytest.raises(ConfigError, match=match):
        loop._check_distributed_type(acc)
    for stage in (1, 2, 3):  # FSDP2 and ZeRO-1/2/3 go through
        acc.state = SimpleNamespace(fsdp_plugin=SimpleNamespace(fsdp_version=2), deepspeed_plugin=SimpleNamespace(
            zero_stage=stage))
        loop._check_distributed_type(acc)


def test_a_deepspeed_launch_without_deepspeed_names_the_extra(monkeypatch):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from obliviate.train import loop

    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # "deepspeed is not installed"
    acc = SimpleNamespace(distributed_type=DistributedType.DEEPSPEED,
                          state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=2)))
    with pytest.raises(ImportError, match=r"pip install 'obliviate\[deepspeed\]'"):
        loop._check_distributed_type(acc)
