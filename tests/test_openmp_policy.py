"""asyncsnn asks libgomp for passive waiting when it can (imported before torch) and the user set nothing."""

import os
import subprocess
import sys

import pytest

SHOW = "import os; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"


def _policy(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", f"{code}; {SHOW}"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    "code, env, expected",
    [
        ("import asyncsnn", {}, "PASSIVE"),  # imported first, nothing set: passive
        ("import asyncsnn", {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),  # the user's policy stays
        ("import asyncsnn", {"GOMP_SPINCOUNT": "300000"}, "unset"),  # so does a spin count
        ("import torch; import asyncsnn", {}, "unset"),  # too late: torch has loaded libgomp
    ],
)
def test_openmp_wait_policy(code, env, expected):
    assert _policy(code, **env) == expected
