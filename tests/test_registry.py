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


def test_the_committed_table_is_up_to_date():
    stale = registry.stale_modules()
    assert not stale, (f"src/obliviate/plugins.json is older than {sorted(stale)}: run `{registry.REGENERATE}` "
                       "(until then those modules are imported for every metadata lookup)")


def test_the_committed_table_equals_the_real_registrations():
    committed = registry._read_index()
    assert committed["plugins"] == registry.build_index()["plugins"], (
        f"src/obliviate/plugins.json differs from what the plug-ins register: run `{registry.REGENERATE}`")


def _tampered(tmp_path, monkeypatch, edit) -> dict:
    """The registry's view of the plug-ins when it reads a copy of a fresh table changed by ``edit``."""
    index = registry.build_index()
    edit(index)
    path = tmp_path / "plugins.json"
    path.write_text(__import__("json").dumps(index))
    monkeypatch.setattr(registry, "INDEX_PATH", path)
    monkeypatch.setattr(registry, "_VIEW", None)
    return registry._view()


def _entry(index: dict, kind: str, name: str) -> dict:
    return next(p for p in index["plugins"] if p["kind"] == kind and p["name"] == name)


def test_metadata_comes_from_the_table_when_its_sources_are_unchanged(tmp_path, monkeypatch):
    view = _tampered(tmp_path, monkeypatch, lambda idx: _entry(idx, "method", "npo").update(paper="from the table"))
    assert view["method"]["npo"]["paper"] == "from the table"


def test_a_changed_source_makes_the_registry_ask_the_module_itself(tmp_path, monkeypatch):
    def edit(idx):
        _entry(idx, "method", "npo").update(paper="stale")
        idx["sources"]["obliviate.methods.llm.npo"] = "0" * 40  # npo.py changed since the table was written

    view = _tampered(tmp_path, monkeypatch, edit)
    assert view["method"]["npo"]["paper"] == registry.get("method", "npo").paper != "stale"


def test_a_new_plugin_file_is_picked_up_before_the_table_is_regenerated(tmp_path, monkeypatch):
    def edit(idx):  # as if methods/llm/simnpo.py were added after the table was written
        idx["plugins"] = [p for p in idx["plugins"] if p["module"] != "obliviate.methods.llm.simnpo"]
        del idx["sources"]["obliviate.methods.llm.simnpo"]

    view = _tampered(tmp_path, monkeypatch, edit)
    assert "simnpo" in view["method"] and "simnpo" in registry.names("method", "text")


def test_a_third_party_plugin_cannot_take_a_builtin_name(monkeypatch):
    registry.names("method")  # builds the view from the table
    monkeypatch.setitem(registry._REGISTRY, "method", {})  # as if no built-in method were imported yet
    with pytest.raises(ValueError, match="built-in module obliviate.methods.llm.npo"):
        registry.register("method", "npo", paper="x")(lambda: None)
