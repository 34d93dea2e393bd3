"""benchmarks/common.py: the timing helpers call the functions as documented (no timing thresholds)."""

from __future__ import annotations


def test_functions_timed_together_take_turns_call_by_call(load_script):
    common = load_script("benchmarks/common.py")
    calls = []
    fns = [lambda name=name: calls.append(name) for name in "abc"]
    medians = common.timed_together(fns, repeats=3, warmup=1)
    assert calls == list("abc") + list("abcabcabc")  # a warm-up call of each, then one call of each per round
    assert len(medians) == 3 and all(m >= 0 for m in medians)
    calls.clear()
    common.timed(fns[0], repeats=2, warmup=0)
    assert calls == ["a", "a"]
