"""The Markdown report and figures of the layer-synchronization study (rows from :mod:`.layer_sync`)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from asyncsnn.studies.report import markdown_table, mean_spread, provenance_section, write_text

#: the paper's headline claims for unlayered training vs layer-trained models, both run asynchronously
CLAIMS = "up to 50 % fewer spikes, a decision up to 2x sooner, at equal or up to 10 % higher accuracy"


#: per-network tables: (title, metric, stop rule, scale, number format)
TABLES = (
    ("Accuracy (%), quiescent:", "accuracy", "quiescent", 100, "{:.2f}"),
    ("Spikes per sample, quiescent:", "spikes", "quiescent", 1, "{:.0f}"),
    ("SynOps per sample (delivered events x fan-out), quiescent:", "synops", "quiescent", 1, "{:.3g}"),
    ("Micro-steps to decision, k after the first output:", "micro_steps_to_decision", "k-after", 1, "{:.0f}"),
    ("Spikes before the first correct output spike, quiescent:", "spikes_before_first_correct", "quiescent",
     1, "{:.0f}"),
)  # fmt: skip


def series(row: dict[str, Any]) -> str:
    """Which model and run a row belongs to (one line in the figures, one row in the tables)."""
    if row["engine"] == "sync":
        return "layer-trained, run layer-sync"
    if row["training"] == "unlayered":
        return f"unlayered ({row['scheduler']})"
    if int(row["sync_threshold"]):
        return f"layer-trained + sync threshold ({row['scheduler']})"
    return f"layer-trained ({row['scheduler']})"


def _group(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """Rows by (network, series, F, stop rule): one entry per seed."""
    out: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[(r["network"], series(r), r["F"], r["stop_rule"])].append(r)
    return out


def _values(group: list[dict[str, Any]], metric: str, scale: float = 1.0) -> list[float]:
    return [scale * float(r[metric]) for r in group if r.get(metric) not in (None, "")]


def _mean(group: list[dict[str, Any]], metric: str) -> float:
    v = _values(group, metric)
    return sum(v) / len(v) if v else math.nan


def _order(rows: list[dict[str, Any]]) -> list[str]:
    names = {series(r) for r in rows}
    rank = ("layer-trained, run", "layer-trained (", "layer-trained +", "unlayered")
    return sorted(names, key=lambda s: (next(i for i, p in enumerate(rank) if s.startswith(p)), s))


def metric_table(
    rows: list[dict[str, Any]], network: str, metric: str, rule: str, scale: float, fmt: str
) -> str:
    """Rows = series, columns = F; mean ± std over seeds. The layer-synchronous run is one value."""
    groups = _group(rows)
    Fs = sorted({int(r["F"]) for r in rows if r["F"] != ""})
    body = []
    for name in _order([r for r in rows if r["network"] == network]):
        if name.startswith("layer-trained, run"):
            cell = mean_spread(_values(groups[(network, name, "", "quiescent")], metric, scale), fmt)
            body.append(
                [name, *([cell] * len(Fs))]
                if metric != "micro_steps_to_decision"
                else [name, *["-"] * len(Fs)]
            )
            continue
        body.append(
            [name, *[mean_spread(_values(groups[(network, name, F, rule)], metric, scale), fmt) for F in Fs]]
        )
    return markdown_table(["model (run)", *[f"F = {F}" for F in Fs]], body)


def stop_rule_table(rows: list[dict[str, Any]], network: str) -> str:
    """Accuracy (%) under each stop rule, per series and F."""
    groups = _group(rows)
    Fs = sorted({int(r["F"]) for r in rows if r["F"] != ""})
    body = []
    for name in _order([r for r in rows if r["network"] == network and r["engine"] == "async"]):
        for F in Fs:
            body.append([name, F, *[mean_spread(_values(groups[(network, name, F, rule)], "accuracy", 100))
                                    for rule in ("quiescent", "first-output", "k-after")]])  # fmt: skip
    return markdown_table(["model (run)", "F", "quiescent", "first output", "k after first output"], body)


def headline(rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, float]]]:
    """Unlayered vs layer-trained, both run asynchronously with the same scheduler and F (seed means)."""
    groups = _group(rows)
    cmp: list[dict[str, float]] = []
    networks = list(dict.fromkeys(r["network"] for r in rows))
    ordered = sorted(groups.items(), key=lambda kv: (networks.index(kv[0][0]), kv[0][1], int(kv[0][2] or 0)))
    for (network, name, F, rule), group in ordered:
        if rule != "quiescent" or not name.startswith("unlayered"):
            continue
        scheduler = name[len("unlayered (") : -1]
        layer_q = groups[(network, f"layer-trained ({scheduler})", F, "quiescent")]
        layer_k = groups[(network, f"layer-trained ({scheduler})", F, "k-after")]
        unl_k = groups[(network, name, F, "k-after")]
        cmp.append({
            "network": network, "scheduler": scheduler, "F": int(F),
            "acc_layer": 100 * _mean(layer_q, "accuracy"), "acc_unlayered": 100 * _mean(group, "accuracy"),
            "spikes_layer": _mean(layer_q, "spikes"), "spikes_unlayered": _mean(group, "spikes"),
            "decision_layer": _mean(layer_k, "micro_steps_to_decision"),
            "decision_unlayered": _mean(unl_k, "micro_steps_to_decision"),
            "acc_k_layer": 100 * _mean(layer_k, "accuracy"),
            "acc_k_unlayered": 100 * _mean(unl_k, "accuracy"),
        })  # fmt: skip
    body = []
    for c in cmp:
        fewer = 100 * (1 - c["spikes_unlayered"] / c["spikes_layer"]) if c["spikes_layer"] else math.nan
        sooner = c["decision_layer"] / c["decision_unlayered"] if c["decision_unlayered"] else math.nan
        c["fewer_spikes_pct"], c["sooner_x"] = fewer, sooner
        body.append([
            c["network"], c["scheduler"], c["F"], f"{c['acc_layer']:.2f} → {c['acc_unlayered']:.2f}",
            f"{c['spikes_layer']:.0f} → {c['spikes_unlayered']:.0f} ({_change(fewer)})",
            f"{c['decision_layer']:.0f} → {c['decision_unlayered']:.0f} ({sooner:.2f}x)",
            f"{c['acc_k_layer']:.2f} → {c['acc_k_unlayered']:.2f}",
        ])  # fmt: skip
    header = ["network", "scheduler", "F", "accuracy % (quiescent)", "spikes / sample (quiescent)",
              "micro-steps to decision (k after)", "accuracy % (k after)"]  # fmt: skip
    return markdown_table(header, body), cmp


def verdict(cmp: list[dict[str, float]]) -> str:
    """A plain statement, per network, of what was measured against the paper's claims.

    A claim's direction counts as reproduced for a network when it holds in a majority of its (scheduler, F)
    comparisons: fewer spikes, an earlier decision, and accuracy no more than 0.5 points lower.
    """
    if not cmp:
        return "No comparison cells were run."
    lines = [
        "Unlayered training compared with the layer-trained model run the same way (the paper: up to 50 % "
        "fewer spikes, up to 2x sooner, equal or up to 10 % higher accuracy):",
        "",
    ]
    verdicts = []
    for network in dict.fromkeys(c.get("network", "all") for c in cmp):
        mine = [c for c in cmp if c.get("network", "all") == network]
        fewer = [c["fewer_spikes_pct"] for c in mine]
        sooner = [c["sooner_x"] for c in mine]
        gain = [c["acc_unlayered"] - c["acc_layer"] for c in mine]
        n = len(mine)
        held = [sum(f > 0 for f in fewer), sum(s > 1 for s in sooner), sum(g >= -0.5 for g in gain)]
        ok = all(h > n / 2 for h in held)
        verdicts.append(ok)
        lines.append(
            f"- **{network}**: fewer spikes in {held[0]} of {n} "
            f"({_change(min(fewer))} to {_change(max(fewer))}); "
            f"decision sooner in {held[1]} of {n} ({min(sooner):.2f}x to {max(sooner):.2f}x); accuracy "
            f"{min(gain):+.2f} to {max(gain):+.2f} points ({held[2]} of {n} within 0.5 points or better). "
            + ("The direction of all three claims is reproduced." if ok else "The claims are NOT reproduced.")
        )
    summary = (
        "the direction of all three claims is reproduced for every network (magnitudes as listed)"
        if all(verdicts)
        else "the claims are NOT all reproduced"
        + (f" (they hold for {sum(verdicts)} of {len(verdicts)} networks)" if any(verdicts) else "")
    )
    lines += ["", f"Verdict: {summary}."]
    return "\n".join(lines)


def _change(fewer_pct: float) -> str:
    return f"{fewer_pct:.0f} % fewer" if fewer_pct >= 0 else f"{-fewer_pct:.0f} % more"


def write(out: Path, preset, rows: list[dict[str, Any]], prov: dict[str, Any]) -> Path:
    """Write ``report.md`` and the figures into ``out``; returns the report's path."""
    table, cmp = headline(rows)
    networks = {spec.name: spec for spec in preset.networks}
    parts = [
        f"# Layer-synchronization study ({preset.name} preset)",
        "",
        "After Koopman et al., *Exploring the Limitations of Layer Synchronization in Spiking Neural "
        "Networks* (arXiv 2408.05098). Every number is in `results.csv` (one row per network, seed, model, "
        "run and stop rule; `_std` columns are spreads over test samples). Tables give means over seeds "
        "± their spread.",
        "",
        f"- F (events per micro-step): {list(preset.group_sizes)}; schedulers: {list(preset.schedulers)}; "
        f"seeds: {prov['seeds']}; k (stop rule `k-after`): {preset.k_after} micro-steps",
        "- stop rules: `quiescent` = all frames, each to an empty queue, class = most output spikes; "
        "`first-output` = stop at the first output spike, class = that neuron (a tie is wrong); "
        "`k-after` = stop k micro-steps after it, class = most output spikes so far",
        "- synchronization threshold n, calibrated on training samples: "
        + ", ".join(
            f"{k}: n = {v['sync_threshold']}" for k, v in prov.get("sync_threshold_calibration", {}).items()
        ),
        "",
        "## Headline: unlayered vs layer-trained, both run asynchronously",
        "",
        f"The paper claims {CLAIMS}.",
        "",
        table,
        "",
        verdict(cmp),
        "",
    ]
    if preset.name != "full":
        parts += [f"*This is the `{preset.name}` preset: models trained on subsets for few epochs; use "
                  "`--preset full` for numbers to cite.*", ""]  # fmt: skip
    for name in sorted({r["network"] for r in rows}, key=list(networks).index):
        spec = networks[name]
        cfg = spec.config
        limits = f"train {cfg.get('train_limit') or 'all'} / test {cfg.get('test_limit') or 'all'} samples"
        parts += [
            f"## {name}: {spec.label}",
            "",
            f"Training: {cfg['epochs']} epochs, batch {cfg['batch_size']}, Adam lr {cfg['lr']} "
            f"({cfg['lr_schedule']}), tau {cfg['tau']} ms, threshold {cfg['threshold']}; {limits}.",
            "",
            *[
                line
                for title, metric, rule, scale, fmt in TABLES
                for line in (title, "", metric_table(rows, name, metric, rule, scale, fmt), "")
            ],
            "Accuracy (%) under each stop rule:",
            "",
            stop_rule_table(rows, name),
            "",
        ]
    figures = plot(out, rows)
    if figures:
        parts += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures] + [""]
    else:
        parts += ["(no figures: install matplotlib, `pip install 'asyncsnn[plot]'`)", ""]
    parts.append(provenance_section(prov))
    return write_text("\n".join(parts), out / "report.md")


def plot(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """accuracy vs F, spikes vs F, distribution of micro-steps to decision, accuracy vs stop rule."""
    from asyncsnn.plots import _pyplot, matplotlib_available

    if not matplotlib_available():
        return []
    plt = _pyplot()
    groups = _group(rows)
    networks = list(dict.fromkeys(r["network"] for r in rows))
    Fs = sorted({int(r["F"]) for r in rows if r["F"] != ""})
    paths = []
    for metric, scale, ylabel, fname in (("accuracy", 100, "accuracy (%)", "accuracy_vs_F.png"),
                                         ("spikes", 1, "spikes / sample", "spikes_vs_F.png")):  # fmt: skip
        fig, axes = plt.subplots(1, len(networks), figsize=(4.6 * len(networks), 3.6), squeeze=False)
        for ax, net in zip(axes[0], networks):
            for name in _order([r for r in rows if r["network"] == net]):
                if name.startswith("layer-trained, run"):
                    ax.axhline(
                        _mean(groups[(net, name, "", "quiescent")], metric) * scale,
                        color="k",
                        ls=":",
                        label=name,
                    )
                    continue
                ys = [_mean(groups[(net, name, F, "quiescent")], metric) * scale for F in Fs]
                ax.plot(Fs, ys, "o-" if name.startswith("unlayered") else "s--", label=name)
            ax.set(xscale="log", xlabel="F (events per micro-step)", ylabel=ylabel, title=net)
            ax.set_xticks(Fs, [str(F) for F in Fs])
        paths.append(_save(fig, axes, out / fname))
    # distribution of micro-steps to decision (k-after), layer-trained vs unlayered, momentum at a middle F
    F = Fs[len(Fs) // 2 - 1] if len(Fs) > 1 else Fs[0]
    fig, axes = plt.subplots(1, len(networks), figsize=(4.6 * len(networks), 3.4), squeeze=False)
    for ax, net in zip(axes[0], networks):
        for name in (
            "layer-trained (momentum)",
            "layer-trained + sync threshold (momentum)",
            "unlayered (momentum)",
        ):
            steps = [r["_decision"] for r in groups.get((net, name, F, "k-after"), []) if "_decision" in r]
            if steps:
                values = torch.cat(steps).numpy()
                ax.hist(values, bins=40, histtype="step", label=name)
        ax.set(xlabel=f"micro-steps to decision (k after, F = {F})", ylabel="samples", title=net)
    paths.append(_save(fig, axes, out / "decision_steps.png"))
    # accuracy vs stop rule at the same F
    rules = ("quiescent", "first-output", "k-after")
    fig, axes = plt.subplots(1, len(networks), figsize=(4.6 * len(networks), 3.4), squeeze=False)
    for ax, net in zip(axes[0], networks):
        names = [
            n
            for n in _order([r for r in rows if r["network"] == net])
            if not n.startswith("layer-trained, run")
        ]
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            ys = [_mean(groups[(net, name, F, rule)], "accuracy") * 100 for rule in rules]
            ax.bar([j + i * width for j in range(len(rules))], ys, width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rules))], rules)
        ax.set(ylabel="accuracy (%)", title=f"{net}, F = {F}")
    paths.append(_save(fig, axes, out / "accuracy_vs_stop_rule.png"))
    return paths


def _save(fig, axes, path: Path) -> Path:
    """One legend for all panels, below them (it would hide data inside a panel); write and close."""
    handles, labels = {}, {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
            labels[label] = label
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.legend(list(handles.values()), list(labels), loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
