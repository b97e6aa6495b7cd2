"""core/ stays usable without the UI: importing it never needs gradio or plotly (nor torch, openai, llama_cpp)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BLOCK_UI = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'gradio', 'plotly', 'torch', 'transformers', 'openai', 'llama_cpp'}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import core, core.prompt, core.parse, core.spans, core.grading, core.store, core.presets, core.settings, core.judge
import core.batch, core.tables, core.cli, core.judge.options
print('ok', sorted(core.judge.BACKENDS))
"""


def test_core_imports_without_gradio_plotly_or_torch() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCK_UI], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok ['llamacpp', 'openai', 'transformers']"


def test_store_is_infrastructure_and_grading_does_not_import_it() -> None:
    """core.store loads no domain module (judgments, grading, prompt ...); core.grading writes through its
    GradeSink protocol and never imports core.store, not even for type checking: no grading <-> store cycle."""
    code = "import sys, core.store; print(sorted(m for m in sys.modules if m == 'core' or m.startswith('core.')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['core', 'core.errors', 'core.store']"

    imported: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / "core" / "grading.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {"core.store", "core.judgments"} & imported, imported
