from dataclasses import dataclass
from typing import Literal

import pytest

from obliviate import registry
from obliviate.config import ConfigError, build_dataclass
from obliviate.train.loop import TrainConfig


@dataclass(frozen=True)
class _C:
    beta: float = 0.1
    steps: int = 3
    kind: Literal["nll", "kl"] = "nll"
    layers: tuple[int, ...] = (1,)
    clip: tuple[float, float] | None = (0.0, 1.0)


def test_overrides_are_type_checked():
    c = build_dataclass(_C, {"beta": "0.5", "steps": 4.0, "kind": "kl", "layers": [2, 3]})
    assert c == _C(beta=0.5, steps=4, kind="kl", layers=(2, 3))
    with pytest.raises(ConfigError, match="steps expects an integer"):
        build_dataclass(_C, {"steps": "many"})
    with pytest.raises(ConfigError, match="must be one of"):
        build_dataclass(_C, {"kind": "l2"})


def test_fixed_length_tuple_needs_that_many_values():
    assert build_dataclass(_C, {"clip": [0, "2.5"]}).clip == (0.0, 2.5)
    assert build_dataclass(_C, {"clip": None}).clip is None
    for bad in ([1.0], [0.0, 1.0, 2.0], "0,1"):
        with pytest.raises(ConfigError, match=r"clip=.*does not match tuple\[float, float\] \| None"):
            build_dataclass(_C, {"clip": bad})
    with pytest.raises(ConfigError, match="layers expects a list"):
        build_dataclass(_C, {"layers": 3})


def test_unknown_key_names_the_close_match():
    with pytest.raises(ConfigError, match="unknown key 'betta'.*Did you mean beta"):
        build_dataclass(_C, {"betta": 1.0})


def test_unknown_method_config_key():
    spec = registry.get("method", "npo").obj
    with pytest.raises(ConfigError, match="method 'npo': unknown key 'bta'"):
        spec.make_config({"bta": 0.2})


def test_train_config_defaults_bind():
    assert build_dataclass(TrainConfig, {"lr": "1e-4", "lora": "true"}).lora is True
