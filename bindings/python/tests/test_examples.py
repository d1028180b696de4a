"""Every example runs by itself (its own coordinator on a free port) and exits 0."""

import os
import pathlib
import subprocess
import sys

import pytest

BINDING = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((BINDING / "examples").glob("[0-9][0-9]_*.py"))


def test_there_are_examples():
    assert [p.name[:2] for p in EXAMPLES] == ["01", "02", "03", "05"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(example):
    env = dict(os.environ)
    if not os.environ.get("HULYNET_TEST_INSTALLED"):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BINDING), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(example)], cwd=str(BINDING), env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "example completed successfully" in result.stdout
    assert "Traceback" not in result.stderr
