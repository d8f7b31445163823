import pytest

from obliviate import registry
from obliviate.registry import UnknownPluginError


def test_unknown_method_lists_close_names():
    with pytest.raises(UnknownPluginError) as e:
        registry.get("method", "npoo")
    msg = str(e.value)
    assert "npo" in msg and "Did you mean" in msg


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown plug-in kind"):
        registry.names("widget")


def test_every_plugin_has_provenance():
    for p in registry.plugins():
        assert p.paper, f"{p.kind} {p.name} has no paper"
        assert p.modalities, p.name


def test_duplicate_registration_is_an_error():
    def first():
        return 1

    def second():
        return 2

    registry.register("attack", "_dup_test", paper="x")(first)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("attack", "_dup_test", paper="x")(second)
    registry._REGISTRY["attack"].pop("_dup_test")
