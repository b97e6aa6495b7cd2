"""core/ stays usable without the UI: importing it never needs gradio or plotly (nor torch, openai, llama_cpp)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BLOCK_UI = """
import importlib, importlib.abc, pkgutil, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'gradio', 'plotly', 'torch', 'transformers', 'openai', 'llama_cpp'}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import core, core.judge
# Every module of core, found by walking the package (core.__main__ runs the CLI on import: it is only an entry point).
names = sorted(info.name for info in pkgutil.walk_packages(core.__path__, 'core.') if info.name != 'core.__main__')
for name in names:
    importlib.import_module(name)
print(' '.join(names))
print('ok', sorted(core.judge.BACKENDS))
"""


def test_core_imports_without_gradio_plotly_or_torch() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCK_UI], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported, backends = done.stdout.strip().splitlines()
    assert backends == "ok ['llamacpp', 'openai', 'transformers']"
    # The walk reaches every module file, so a new module is checked without being listed here.
    on_disk = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for path in (ROOT / "core").rglob("*.py")} - {"core", "core.__main__"}
    assert set(imported.split()) == on_disk


def test_store_is_infrastructure_and_grading_does_not_import_it() -> None:
    """core.store loads no domain module (judgments, grading, prompt ...); core.grading writes through its
    GradeSink protocol and never imports core.store, not even for type checking: no grading <-> store cycle."""
    code = "import sys, core.store; print(sorted(m for m in sys.modules if m == 'core' or m.startswith('core.')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # core.storage (where the file lives, which SQLite settings it needs) is infrastructure too.
    assert done.stdout.strip() == "['core', 'core.errors', 'core.migrations', 'core.storage', 'core.store']"

    imported: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / "core" / "grading.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {"core.store", "core.judgments"} & imported, imported


def test_no_judge_backend_imports_another() -> None:
    """Back-ends share core.judge.common and core.judge.base, never one another's modules."""
    import ast

    def imports(path: Path) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        return names

    judge = ROOT / "core" / "judge"
    backends = {path.stem for path in judge.glob("*_backend.py")}
    assert backends == {"transformers_backend", "llamacpp_backend", "openai_backend"}
    for path in judge.glob("*.py"):
        named = {name.rsplit(".", 1)[-1] for name in imports(path) if name.startswith("core.judge")}
        if path.stem in backends:
            assert not (named & backends) - {path.stem}, f"{path.name} imports a sibling back-end"
        elif path.name != "__init__.py":  # the package imports each back-end to register it; nothing else may
            assert not named & backends, f"{path.name} imports a back-end"
    below = [name for name in imports(judge / "common.py") if name.startswith("core.judge")]
    assert below == [], "common is the bottom layer of core.judge"
