"""Every timing assertion in the tests carries the `timing` marker, so a loaded machine can leave them out.

Declared markers (pyproject.toml): browser, load, timing, llamacpp. The fast development run is
`pytest -m "not browser and not load"`; CI runs everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHOLE_FILE_MARKS = ("pytest.mark.browser", "pytest.mark.load")  # files that are about time as a whole


def _measures(node: ast.AST) -> bool:
    """The node reads the clock (time.perf_counter) or calls a helper that times a call (`timed`)."""
    return any(isinstance(call, ast.Call) and ast.unparse(call.func).endswith(("perf_counter", "timed"))
               for call in ast.walk(node))


def _clocked_names(function: ast.FunctionDef) -> set[str]:
    """Names that hold a measured time: assigned from the clock, or a list a measured time is appended to."""
    names: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and _measures(node.value):
            for target in node.targets:
                last = target.elts[-1] if isinstance(target, ast.Tuple) else target  # (outcome, seconds) = timed(...)
                names |= {name.id for name in ast.walk(last) if isinstance(name, ast.Name)}
        elif isinstance(node, ast.AugAssign | ast.Expr) and _measures(node):
            owner = node.target if isinstance(node, ast.AugAssign) else getattr(node.value, "func", node.value)
            names |= {name.id for name in ast.walk(owner) if isinstance(name, ast.Name)}
    return names


def _asserts_on_time(function: ast.FunctionDef) -> bool:
    clocked = _clocked_names(function)
    return any(isinstance(node, ast.Assert) and (_measures(node.test) or any(
        isinstance(name, ast.Name) and name.id in clocked for name in ast.walk(node.test)))
        for node in ast.walk(function))


def _marks(node: ast.FunctionDef | ast.ClassDef) -> set[str]:
    return {ast.unparse(decorator) for decorator in node.decorator_list}


def unmarked_timing_tests(source: str) -> list[str]:
    """test functions of a module that assert on a measured time without the timing marker."""
    module = ast.parse(source)
    whole_file = " ".join(ast.unparse(node) for node in module.body if isinstance(node, ast.Assign)
                          and any(ast.unparse(target) == "pytestmark" for target in node.targets))
    if any(mark in whole_file for mark in WHOLE_FILE_MARKS):
        return []
    found = []
    scopes: list[tuple[set[str], ast.AST]] = [(set(), module)]
    scopes += [(_marks(node), node) for node in module.body if isinstance(node, ast.ClassDef)]
    for outer, scope in scopes:
        for node in getattr(scope, "body", []):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and _asserts_on_time(node):
                if "pytest.mark.timing" not in outer | _marks(node):
                    found.append(node.name)
    return found


def test_every_timing_assertion_is_marked() -> None:
    offenders = {path.name: names for path in sorted((ROOT / "tests").glob("test_*.py"))
                 if (names := unmarked_timing_tests(path.read_text()))}
    assert offenders == {}


def test_the_detector_sees_a_timing_assertion_and_its_marker() -> None:
    timed = ("import time\ndef test_x():\n    t = time.perf_counter()\n    s = time.perf_counter() - t\n"
             "    assert s < 1\n")
    helper = "def test_y():\n    out, seconds = timed(f)\n    assert out and seconds < 1\n"
    printed = ("import time\ndef test_z():\n    t = time.perf_counter()\n    print(time.perf_counter() - t)\n"
               "    assert 1\n")
    assert unmarked_timing_tests(timed) == ["test_x"] and unmarked_timing_tests(helper) == ["test_y"]
    assert unmarked_timing_tests(printed) == []
    assert unmarked_timing_tests("import pytest\n@pytest.mark.timing\n" + timed.split("\n", 1)[1]) == []
    assert unmarked_timing_tests("import pytest\npytestmark = pytest.mark.load\n" + timed) == []


def test_the_load_test_is_marked_load() -> None:
    module = ast.parse((ROOT / "tests" / "test_load.py").read_text())
    marks = [ast.unparse(node.value) for node in module.body if isinstance(node, ast.Assign)
             and [ast.unparse(target) for target in node.targets] == ["pytestmark"]]
    assert marks == ["pytest.mark.load"]


def test_the_fast_run_is_documented_with_declared_markers() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'scripts/test -m "not browser and not load"' in readme
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert all(f'"{mark}: ' in pyproject for mark in ("browser", "load", "timing"))
