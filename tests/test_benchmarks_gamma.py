"""benchmarks/gamma.py: the command runs its worker processes and writes the verdict (no timing thresholds).
The measurement itself is tested in tests/studies/test_gamma_memory.py."""

from __future__ import annotations

import json
import sys


def test_the_benchmark_writes_results_and_a_verdict(load_script, tmp_path, monkeypatch, capsys):
    bench = load_script("benchmarks/gamma.py")
    out = tmp_path / "memory.json"
    argv = ["gamma.py", "--steps", "8", "16", "--methods", "gamma-online", "--batch", "2", "--hidden", "8",
            "--repeats", "1", "--mmap-threshold", "0", "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    doc = json.loads(out.read_text())
    assert [(r["method"], r["T"]) for r in doc["results"]] == [("gamma-online", 8), ("gamma-online", 16)]
    assert all(r["batch"] == 2 and r["online_path"] == "fast" for r in doc["results"])
    assert doc["verdict"]["T_low"] == 8 and doc["verdict"]["T_high"] == 16
    assert "online_within_1.2x" in doc["verdict"]
    assert "claim 'online training memory" in capsys.readouterr().out
