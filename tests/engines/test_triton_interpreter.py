"""The CUDA kernel's code, run by Triton's interpreter on CPU, agrees with the reference (no GPU needed).

The interpreter is chosen when Triton is imported, so the check runs in a fresh process.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="Triton is not installed (the test extra installs it)")


def test_triton_kernel_in_the_interpreter_equals_the_reference():
    script = Path(__file__).with_name("kernel_cases.py")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all cases agree" in done.stdout
    assert done.stdout.count(": same") == 14
