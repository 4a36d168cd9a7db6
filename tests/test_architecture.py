"""The import arrows are contracts: lint-imports checks the packages (setup.cfg, [importlinter]),
and the test modules may import only tests.support from the tests."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crawler", "filters", "pipelines", "training", "benchmarks")
LINT_IMPORTS = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def _scratch_copy(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    return tmp_path


def test_the_package_arrows_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


@pytest.mark.e2e  # lint-imports over a scratch copy, once per case
@pytest.mark.parametrize("module, planted, contract", [
    ("filters/text.py", "import apache_beam", "filters import no other package"),
    ("crawler/http.py", "from pipelines import schema", "crawler imports neither"),
    ("pipelines/split.py", "import training.loss", "pipelines import no training"),
    ("training/tokenizer.py", "from filters import rules", "training imports no Beam"),
    ("training/tokenizer.py", "from pipelines import schema", "training imports no Beam"),
    ("benchmarks/download.py", "import tests.support", "benchmarks import no tests"),
])
def test_a_wrong_way_import_breaks_its_contract(tmp_path, module, planted, contract):
    scratch = _scratch_copy(tmp_path)
    path = scratch / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{planted}  # planted\n", encoding="utf-8")
    result = _lint_imports(scratch)
    assert result.returncode != 0, result.stdout
    verdicts = re.findall(r"(\S.*?) (KEPT|BROKEN)", " ".join(result.stdout.split()))
    assert any(contract in name and verdict == "BROKEN" for name, verdict in verdicts), result.stdout


def cross_test_imports(source: str) -> list[str]:
    """The modules of `tests` that `source` imports other than `tests.support`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):  # a relative import reaches a sibling test module
            found.append("." * node.level + (node.module or ""))
        found += [n for n in names if (n == "tests" or n.startswith("tests."))
                  and not (n == "tests.support" or n.startswith("tests.support."))]
    return sorted(set(found))


def test_test_modules_import_no_other_test_module():
    offenders = {}
    for path in (ROOT / "tests").rglob("*.py"):
        if "support" in path.relative_to(ROOT / "tests").parts:
            continue
        found = cross_test_imports(path.read_text(encoding="utf-8"))
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert not offenders, f"test modules importing other test modules (move helpers to tests/support/): {offenders}"


def test_the_test_module_check_sees_a_planted_import():
    assert cross_test_imports("from tests.pipelines.test_crawl import crawl_argv\n") == [
        "tests.pipelines.test_crawl", "tests.pipelines.test_crawl.crawl_argv"]
    assert cross_test_imports("import tests.crawler.conftest\n") == ["tests.crawler.conftest"]
    assert cross_test_imports("from tests.support.crawl import crawl_argv\nimport pytest\n") == []
    assert cross_test_imports("from .conftest import entry\n") == [".conftest"]


# --------------------------------------------------------------------------------------------
# Test tiers
# --------------------------------------------------------------------------------------------

def _collected(target: str) -> set[str]:
    """The test ids `make TARGET` would run, as collected by pytest through the Makefile's own command."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["VENV"] = os.path.dirname(os.path.dirname(sys.executable))
    done = subprocess.run(["make", "-s", target, "PYTEST_ARGS=--collect-only -q -p no:cacheprovider"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {line for line in done.stdout.splitlines() if "::" in line}


@pytest.mark.e2e  # collects the whole suite twice through make
def test_make_test_fast_runs_every_test_but_the_e2e_tier():
    everything, fast = _collected("test"), _collected("test-fast")
    assert fast and fast < everything
    skipped = everything - fast
    # The e2e tier: whole stages, such as the kill -9 tests and the offline walk-through.
    assert any(t.startswith("tests/test_faults.py::") for t in skipped)
    assert "tests/test_readme.py::test_offline_stages_run_as_written" in skipped
    assert not any(t.startswith("tests/test_faults.py::") for t in fast)
    assert any(t.startswith("tests/filters/contract/test_flags.py::") for t in fast)
