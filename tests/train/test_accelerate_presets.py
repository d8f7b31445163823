"""The shipped `accelerate launch --config_file` presets parse through accelerate's own config
classes, with the settings the README promises."""

from __future__ import annotations

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from obliviate.presets import accelerate_config, list_presets


@pytest.mark.parametrize("name,kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero2", "DEEPSPEED"),
                                       ("deepspeed_zero3", "DEEPSPEED")])
def test_each_accelerate_preset_loads_through_accelerates_config_parser(name, kind):
    cfg = load_config_from_file(str(accelerate_config(name)))
    assert cfg.distributed_type.value == kind and cfg.num_processes == 2 and cfg.mixed_precision == "bf16"
    if name == "fsdp":  # FSDP2 (the loop refuses version 1), full shard, one unit per decoder layer
        assert cfg.fsdp_config["fsdp_version"] == 2 and cfg.fsdp_config["fsdp_reshard_after_forward"] is True
        assert cfg.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
        assert cfg.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    if name.startswith("deepspeed"):
        assert cfg.deepspeed_config["zero_stage"] == int(name[-1])


def test_accelerate_presets_are_not_method_presets():
    assert all(bench != "accelerate" for bench, _ in list_presets())
