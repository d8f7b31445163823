"""Every shipped preset loads and binds to its method's config and to TrainConfig (no unknown keys,
right types), and every registered language-model method has a fictional_authors preset."""

import pytest

from obliviate import registry
from obliviate.api import resolve_configs
from obliviate.presets import list_presets, load_preset

PRESETS = list_presets()


@pytest.mark.parametrize("benchmark,method", PRESETS, ids=[f"{b}/{m}" for b, m in PRESETS])
def test_preset_binds(benchmark, method):
    raw = load_preset(benchmark, method)
    assert raw.get("notes"), "a preset says where its numbers come from"
    mcfg, tcfg = resolve_configs(method, benchmark)
    for key, value in raw.get("method", {}).items():
        assert getattr(mcfg, key) == (tuple(value) if isinstance(value, list) else value)
    for key, value in raw.get("train", {}).items():
        assert getattr(tcfg, key) == (tuple(value) if isinstance(value, list) else value)


def test_every_text_method_has_a_builtin_benchmark_preset():
    have = {m for b, m in PRESETS if b == "fictional_authors"}
    missing = set(registry.names("method", "text")) - have
    assert not missing, f"no presets/fictional_authors/<method>.yaml for: {sorted(missing)}"


def test_preset_methods_are_registered():
    text = set(registry.names("method", "text"))
    assert {m for _, m in PRESETS} <= text
    assert {m for _, m in list_presets(image=True)} <= set(registry.names("method", "image"))


IMAGE_PRESETS = list_presets(image=True)


@pytest.mark.parametrize("benchmark,method", IMAGE_PRESETS, ids=[f"{b}/{m}" for b, m in IMAGE_PRESETS])
def test_digits_preset_binds_per_scenario(benchmark, method):
    """defaults < preset method < preset scenarios.<kind> < overrides, each scenario as the bench runs it."""
    from obliviate.benchmarks.digits_bench import method_config

    raw = load_preset(benchmark, method)
    assert raw.get("notes"), "a preset says where its numbers come from"
    defaults = registry.get("method", method).obj.make_config({})
    for scenario, kind in (("random10", "random10"), ("class", "class"), ("class7", "class"), ("subclass", "subclass")):
        cfg = method_config(method, scenario)
        want = {**raw.get("method", {}), **(raw.get("scenarios") or {}).get(kind, {})}
        for key in vars(defaults):
            assert getattr(cfg, key) == want.get(key, getattr(defaults, key)), (scenario, key)
    first = next(iter(vars(defaults)))
    assert getattr(method_config(method, "class", {first: getattr(defaults, first)}), first) == getattr(defaults, first)


def test_a_digits_preset_with_an_unknown_scenario_or_field_is_refused(tmp_path, monkeypatch):
    from obliviate import presets
    from obliviate.benchmarks.digits_bench import method_config
    from obliviate.config import ConfigError

    (tmp_path / "digits").mkdir()
    monkeypatch.setattr(presets, "PRESET_ROOT", tmp_path)
    (tmp_path / "digits" / "ssd.yaml").write_text("notes: x\nscenarios:\n  random11:\n    alpha: 5.0\n")
    with pytest.raises(ConfigError, match="random11"):
        method_config("ssd", "random10")
    (tmp_path / "digits" / "ssd.yaml").write_text("notes: x\nscenarios:\n  random10:\n    alfa: 5.0\n")
    with pytest.raises(ConfigError, match="alfa"):
        method_config("ssd", "random10")
    (tmp_path / "digits" / "ssd.yaml").write_text("notes: x\ntrain:\n  lr: 1.0\n")
    with pytest.raises(ConfigError, match="train"):
        method_config("ssd", "random10")
