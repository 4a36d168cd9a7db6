"""Under CI=true a skipped flink test fails, keeping its reason; other skips, and every skip
elsewhere, stay skips."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SAMPLE = '''
import pytest

@pytest.mark.flink
def test_needs_flink():
    pytest.skip("no Java found")

def test_needs_a_font():
    pytest.skip("no CJK font")
'''


def _run(tmp_path, ci):
    (tmp_path / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    flink: a flink test\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(REPO)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p",
                           "tests.support.ci_skips", "--strict-markers", "test_sample.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.e2e
def test_under_ci_a_skipped_flink_test_fails_with_its_reason(tmp_path):
    answer = _run(tmp_path, "true")
    assert answer.returncode == 1, answer.stdout
    assert "1 failed, 1 skipped" in answer.stdout
    assert "CI=true: a skipped flink test is a failure. It skipped because: Skipped: no Java found" in answer.stdout


@pytest.mark.e2e
@pytest.mark.parametrize("ci", [None, "false"])
def test_elsewhere_a_skip_stays_a_skip(tmp_path, ci):
    answer = _run(tmp_path, ci)
    assert answer.returncode == 0, answer.stdout
    assert "2 skipped" in answer.stdout


def test_the_suite_registers_the_hook(request):
    modules = {impl.function.__module__
               for impl in request.config.pluginmanager.hook.pytest_runtest_makereport.get_hookimpls()}
    assert "tests.support.ci_skips" in modules
