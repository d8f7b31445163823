"""What each entry point imports: the CLI's start-up stays light, plug-in modules load only when
used, and the layers import one way (scoring and metrics never import methods)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from obliviate import registry
from obliviate.cli import COMMANDS

SRC = Path(registry.__file__).resolve().parent
HEAVY = ("torch", "transformers", "matplotlib", "sklearn", "datasets", "peft", "opacus", "jinja2", "scipy")

# Run in a child process: point the registry at a freshly written table (argv[1]), run the CLI with
# argv[2:], and print which heavy packages and plug-in modules ended up imported.
CHILD = """
import json, sys
from pathlib import Path
from obliviate import registry
registry.INDEX_PATH = Path(sys.argv[1])
from obliviate.cli import main
try:
    exec(sys.argv[2])
except SystemExit:
    pass
print("\\nIMPORTED " + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r
                                        or m.startswith(tuple(p + "." for p in %r)))))
""" % (HEAVY, registry._PLUGIN_PACKAGES)


@pytest.fixture(scope="module")
def fresh_index(tmp_path_factory) -> Path:
    """A table written from the real registrations now (the committed one may lag behind edits)."""
    return registry.write_index(tmp_path_factory.mktemp("index") / "plugins.json")


def _imported(index: Path, code: str) -> tuple[list[str], str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(index), code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("IMPORTED "))
    return json.loads(line[len("IMPORTED "):]), out.stdout


@pytest.mark.parametrize("argv", [["--help"], ["ls"], ["ls", "--json", "--kind", "metric"]]
                         + [[fn.__name__, "--help"] for fn in COMMANDS])
def test_cli_start_up_imports_no_heavy_package_and_no_plugin(fresh_index, argv):
    imported, stdout = _imported(fresh_index, f"main({argv!r})")
    heavy = [m for m in imported if m.split(".")[0] in HEAVY]
    plugins = [m for m in imported if m.split(".")[0] == "obliviate"]
    assert not heavy and not plugins, f"obliviate {' '.join(argv)} imported {heavy + plugins}"
    if argv[0] == "ls" and "--help" not in argv:  # the table still lists the plug-ins
        assert ('"mia_min_k"' if "--json" in argv else "npo") in stdout


def test_ls_json_is_the_registrations_records(fresh_index):
    _, stdout = _imported(fresh_index, "main(['ls', '--json'])")
    printed = json.loads(stdout[:stdout.index("\nIMPORTED ")])
    registry.plugins()  # every built-in module imported in this process: the real registrations
    real = [p.record() for k in registry.KINDS for p in (registry._REGISTRY[k][n] for n in sorted(registry._REGISTRY[k]))
            if p.module.startswith("obliviate.")]
    assert printed == real


def test_get_imports_only_the_module_that_registers_the_plugin(fresh_index):
    imported, _ = _imported(fresh_index, "from obliviate import registry as r; "
                                         "assert r.get('method', 'npo').obj.name == 'npo'")
    plugin_modules = [m for m in imported if m.split(".")[0] == "obliviate" and m.count(".") >= 2]
    assert "obliviate.methods.llm.npo" in plugin_modules
    others = [m for m in plugin_modules if m.startswith(("obliviate.methods.llm.", "obliviate.metrics.",
                                                         "obliviate.methods.vision.", "obliviate.attacks."))
              and m != "obliviate.methods.llm.npo"]
    assert others == [], f"get('method', 'npo') also imported {others}"
    assert not [m for m in imported if m.split(".")[0] in ("peft", "opacus", "matplotlib", "datasets", "sklearn")]


def _imports_of(path: Path) -> set[str]:
    """Every module a source file imports, at any depth (function-level imports included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_scoring_and_metrics_never_import_methods():
    offenders = {}
    for package in ("scoring", "metrics"):
        for path in sorted((SRC / package).rglob("*.py")):
            bad = sorted(m for m in _imports_of(path) if m == "obliviate.methods" or m.startswith("obliviate.methods."))
            if bad:
                offenders[str(path.relative_to(SRC))] = bad
    assert not offenders, f"scoring/ and metrics/ sit below methods/ (shared token math is obliviate.ops): {offenders}"


def test_the_import_direction_check_sees_function_level_imports(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from obliviate.methods import losses\n    import obliviate.methods.base\n")
    assert {"obliviate.methods.losses", "obliviate.methods.base"} <= _imports_of(p)


def test_every_registration_lives_in_a_plugin_package():
    """The registry finds built-ins by one rule (modules of `registry._PLUGIN_PACKAGES`); a
    ``register("kind", ...)`` call elsewhere would only run if something happened to import it."""
    roots = tuple(SRC.joinpath(*p.split(".")[1:]) for p in registry._PLUGIN_PACKAGES)
    outside = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "registry.py" or any(r in path.parents for r in roots):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "register"
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in registry.KINDS):
                outside.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not outside, f"register() outside the plug-in packages {registry._PLUGIN_PACKAGES}: {outside}"
