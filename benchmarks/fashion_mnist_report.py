"""Results of the Fashion-MNIST benchmark: mean ± std over seeds, comparisons with verdicts, the pretraining-budget
table, the random-init convergence curve, markdown, json and plots.

A run record is a dict `{"method": str, "protocol": str, "seed": int, "accuracy": float}` (test top-1 in [0, 1]);
convergence records also hold the fine-tuning `"epochs"`. `seed` is the pretraining seed: it fixes the initial
encoder weights and the pretraining run, and the one fine-tuning run of that encoder uses the same seed (which also
draws the labelled subset). So the runs of one seed pair across methods, and mean ± std are over pretraining seeds.
"""

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Summary:
    """Accuracy of one method under one protocol over its seeds, in percent."""

    mean: float
    std: float  # sample standard deviation (n - 1); 0 for a single seed
    n: int

    @classmethod
    def of(cls, accuracies: list[float]) -> "Summary":
        values = [100 * a for a in accuracies]
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))

    def __str__(self) -> str:
        """`"mean ± std"`; the mean alone for a single seed, which has no spread."""
        return f"{self.mean:.1f} ± {self.std:.1f}" if self.n > 1 else f"{self.mean:.1f}"

    def cell(self, expected_n: int) -> str:
        """`str(self)`, with `(n=k)` appended when fewer than `expected_n` seeds finished."""
        return str(self) + (f" (n={self.n})" if self.n < expected_n else "")


def summarize(records: list[dict]) -> dict[str, dict[str, Summary]]:
    """`{method: {protocol: Summary}}` over the seeds of each (method, protocol)."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for record in records:
        grouped.setdefault(record["method"], {}).setdefault(record["protocol"], []).append(record["accuracy"])
    return {m: {p: Summary.of(accs) for p, accs in by_protocol.items()} for m, by_protocol in grouped.items()}


def verdict(candidate: Summary, reference: Summary) -> str:
    """"better" / "worse" when the mean difference exceeds twice its standard error, else "no clear difference";
    "too few seeds" when either side has fewer than 2 (no spread to compare the difference with)."""
    if min(candidate.n, reference.n) < 2:
        return "too few seeds"
    standard_error = math.sqrt(candidate.std**2 / candidate.n + reference.std**2 / reference.n)
    return _verdict_beyond(candidate.mean - reference.mean, standard_error)


def _verdict_beyond(difference: float, standard_error: float) -> str:
    if abs(difference) > 2 * standard_error and difference != 0:
        return "better" if difference > 0 else "worse"
    return "no clear difference"


def curve_verdict(longer: Summary, chosen: Summary) -> str:
    """`verdict` of a longer fine-tuning budget against the chosen one. A point of one seed (a protocol's
    `convergence_seeds`) borrows the chosen budget's seed spread: the standard error of one run minus the mean of
    n runs is std * sqrt(1 + 1/n)."""
    if longer.n == 1 and chosen.n >= 2:
        return _verdict_beyond(longer.mean - chosen.mean, chosen.std * math.sqrt(1 + 1 / chosen.n))
    return verdict(longer, chosen)


def paired_wins(records: list[dict], candidate: str, reference: str, protocol: str) -> tuple[int, int]:
    """`(wins, n)`: of the `n` seeds both methods finished under `protocol`, those where `candidate` is more accurate
    (the runs of one seed share the initial encoder weights and the labelled subset)."""
    by_seed = {(r["method"], r["seed"]): r["accuracy"] for r in records if r["protocol"] == protocol}
    seeds = [seed for method, seed in by_seed if method == candidate and (reference, seed) in by_seed]
    return sum(by_seed[candidate, s] > by_seed[reference, s] for s in seeds), len(seeds)


def compare(records: list[dict], pairs, protocols) -> list[dict]:
    """One row per (candidate, reference, protocol) present in `records`: difference of the means over seeds in
    points, the verdict over seeds and the paired count of seeds where the candidate wins (`"2/3"`)."""
    summaries = summarize(records)
    rows = []
    for candidate, reference in pairs:
        for protocol in protocols:
            a = summaries.get(candidate, {}).get(protocol)
            b = summaries.get(reference, {}).get(protocol)
            if a is None or b is None:
                continue
            wins, n = paired_wins(records, candidate, reference, protocol)
            rows.append({
                "candidate": candidate,
                "reference": reference,
                "protocol": protocol,
                "difference": a.mean - b.mean,
                "verdict": verdict(a, b),
                "seeds_better": f"{wins}/{n}",
            })
    return rows


def headlines(rows: list[dict]) -> list[str]:
    """One sentence per (candidate, reference) pair: in how many protocols the candidate is better, and the protocols
    of every other verdict (with a single protocol: its verdict)."""
    pairs: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        pairs.setdefault((row["candidate"], row["reference"]), []).append(row)
    sentences = []
    for (candidate, reference), group in pairs.items():
        if len(group) == 1:
            sentences.append(f"- {candidate} vs {reference}, {group[0]['protocol']}: {group[0]['verdict']}.")
            continue
        better = [r for r in group if r["verdict"] == "better"]
        parts = [f"better in {len(better)} of {len(group)} protocols"]
        for other in dict.fromkeys(r["verdict"] for r in group if r["verdict"] != "better"):
            parts.append(f"{other} in {', '.join(r['protocol'] for r in group if r['verdict'] == other)}")
        sentences.append(f"- {candidate} vs {reference}: " + "; ".join(parts) + ".")
    return sentences


def markdown_table(summaries, methods: list[str], protocols: list[str], descriptions: dict[str, str],
                   expected_n: int = 1, groups: dict[str, str] | None = None) -> str:
    """Methods as rows, protocols as columns, `mean ± std`; the best mean of every column in bold, within each group
    of rows (`groups`: method -> group, e.g. the encoder family where families see different inputs; default: one
    group)."""
    group = (groups or {}).get
    best: dict[tuple[str | None, str], float] = {}  # (group, protocol) -> the best finished mean
    for method in methods:
        for protocol, summary in summaries.get(method, {}).items():
            if protocol in protocols:
                key = (group(method), protocol)
                best[key] = max(best.get(key, summary.mean), summary.mean)
    lines = ["| Method | Encoder, pretraining | " + " | ".join(protocols) + " |",
             "|---|---|" + "---:|" * len(protocols)]
    for method in methods:
        cells = []
        for protocol in protocols:
            summary = summaries.get(method, {}).get(protocol)
            if summary is None:
                cells.append("—")
            else:
                cell = summary.cell(expected_n)
                is_best = round(summary.mean, 1) == round(best[group(method), protocol], 1)
                cells.append(f"**{cell}**" if is_best else cell)
        lines.append(f"| {method} | {descriptions[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_comparisons(rows: list[dict]) -> str:
    lines = ["| Comparison | Protocol | Difference (points) | Verdict | Seeds where better |", "|---|---|---:|---|---:|"]
    for row in rows:
        lines.append(f"| {row['candidate']} vs {row['reference']} | {row['protocol']} | "
                     f"{row['difference']:+.1f} | {row['verdict']} | {row['seeds_better']} |")
    return "\n".join(lines)


def markdown_budget_table(summaries, comparisons: list[dict], budget_pairs: list[tuple[float, str, str]],
                          protocols: list[str]) -> str:
    """The headline pair across pretraining budgets: one line per (pretraining epochs, protocol) with both means, the
    difference and its verdict. `budget_pairs` holds `(epochs, candidate row, reference row)`."""
    verdicts = {(r["candidate"], r["reference"], r["protocol"]): r for r in comparisons}
    lines = ["| Pretraining epochs | Protocol | Candidate | Reference | Difference (points) | Verdict |",
             "|---:|---|---|---|---:|---|"]
    for epochs, candidate, reference in budget_pairs:
        for protocol in protocols:
            row = verdicts.get((candidate, reference, protocol))
            if row is None:
                continue
            lines.append(f"| {epochs:g} | {protocol} | {candidate}: {summaries[candidate][protocol]} | "
                         f"{reference}: {summaries[reference][protocol]} | {row['difference']:+.1f} | "
                         f"{row['verdict']} |")
    return "\n".join(lines) if len(lines) > 2 else "(No pair has finished at any pretraining budget yet.)"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_label(method: str, seeds: list[int], most: int) -> str:
    """A method's legend entry: its name, with its fewest seeds where its bars have fewer than the plot's most (a bar
    of one seed has no error bar, which would otherwise read as no spread)."""
    fewest = min(seeds, default=most)
    return method if fewest >= most else f"{method} (n={fewest})"


def plot(summaries, methods: list[str], protocols: list[str], path: Path, title: str,
         budget_pairs: list[tuple[float, str, str]] = (), metric: str = "test top-1 (%)") -> None:
    """Grouped bars: one group per protocol, one bar per method, error bars = std over seeds. With `budget_pairs`
    (`(epochs, candidate, reference)`), a second panel draws both methods' accuracy against pretraining epochs."""
    plt = _pyplot()
    width = 0.8 / len(methods)
    bars_width = max(8, 1.6 * len(protocols) * len(methods) / 3)
    figure, axes = plt.subplots(1, 2 if budget_pairs else 1, squeeze=False,
                                figsize=(bars_width + (6 if budget_pairs else 0), 5.5),
                                gridspec_kw={"width_ratios": [bars_width, 6] if budget_pairs else [1]})
    axis = axes[0][0]
    colors = plt.get_cmap("tab20")
    most = max((s.n for method in methods for s in summaries.get(method, {}).values()), default=0)
    all_means = []
    for index, method in enumerate(methods):
        xs, means, stds, seeds = [], [], [], []
        for position, protocol in enumerate(protocols):
            summary = summaries.get(method, {}).get(protocol)
            if summary is not None:
                xs.append(position - 0.4 + width * (index + 0.5))
                means.append(summary.mean)
                stds.append(summary.std if summary.n > 1 else float("nan"))  # one seed: no spread to draw
                seeds.append(summary.n)
        all_means += means
        axis.bar(xs, means, width, yerr=stds, capsize=2, label=bar_label(method, seeds, most),
                 color=colors(index % 20))
    axis.set_xticks(range(len(protocols)), protocols)
    axis.set_ylabel(f"{metric}, mean ± std over pretraining seeds")
    if all_means:
        axis.set_ylim(max(0, min(all_means) - 10), min(100, max(all_means) + 5))
    axis.set_title(title)
    axis.legend(fontsize=8, ncol=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.08))
    axis.grid(axis="y", alpha=0.3)
    if budget_pairs:
        _plot_budgets(axes[0][1], summaries, budget_pairs, protocols)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_budgets(axis, summaries, budget_pairs, protocols) -> None:
    """Candidate (solid) and reference (dashed) of `budget_pairs` against pretraining epochs, one color per protocol."""
    for index, protocol in enumerate(protocols):
        for side, style in ((1, "-"), (2, "--")):
            points = [(pair[0], summaries[pair[side]][protocol]) for pair in budget_pairs
                      if protocol in summaries.get(pair[side], {})]
            if points:
                axis.errorbar([e for e, _ in points], [s.mean for _, s in points], [s.std for _, s in points],
                              linestyle=style, marker="o", capsize=2, color=f"C{index}",
                              label=f"{'candidate' if side == 1 else 'reference'}, {protocol}")
    if budget_pairs:
        epochs, candidate, reference = budget_pairs[0]
        axis.set_title(f"{candidate} (solid) vs {reference} (dashed)", fontsize=9)
    axis.set_xlabel("pretraining epochs")
    axis.set_xticks(sorted({pair[0] for pair in budget_pairs}))
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)
    axis.grid(alpha=0.3)


# ----- the random-init convergence curve ------------------------------------------------------------------------------
def convergence_curves(records: list[dict]) -> dict[tuple[str, str], dict[int, Summary]]:
    """`{(method, protocol): {fine-tuning epochs: Summary over seeds}}`, epochs ascending."""
    grouped: dict[tuple[str, str], dict[int, list[float]]] = {}
    for record in records:
        curve = grouped.setdefault((record["method"], record["protocol"]), {})
        curve.setdefault(record["epochs"], []).append(record["accuracy"])
    return {key: {e: Summary.of(curve[e]) for e in sorted(curve)} for key, curve in grouped.items()}


def convergence_verdicts(curves, chosen: dict[tuple[str, str], int]) -> list[dict]:
    """Is the benchmark's fine-tuning budget `chosen[method, protocol]` (epochs) converged? For each curve, the budget is
    converged when no longer budget on the curve is `better` (`curve_verdict`); `gain` is the best longer budget's
    mean minus the chosen budget's (None when the curve has no longer budget or misses the chosen one); `converged`
    is None when that cannot be judged (no longer budget, or too few seeds)."""
    rows = []
    for (method, protocol), curve in curves.items():
        epochs = chosen.get((method, protocol))
        at = curve.get(epochs)
        longer = {e: s for e, s in curve.items() if epochs is not None and e > epochs}
        if at is None or not longer:
            rows.append({"method": method, "protocol": protocol, "epochs": epochs, "gain": None, "converged": None})
            continue
        best = max(longer, key=lambda e: longer[e].mean)
        verdicts = [curve_verdict(s, at) for s in longer.values()]
        rows.append({
            "method": method,
            "protocol": protocol,
            "epochs": epochs,
            "accuracy": at.mean,
            "best_longer_epochs": best,
            "gain": longer[best].mean - at.mean,
            "converged": None if "too few seeds" in verdicts else "better" not in verdicts,
        })
    return rows


def converged_budget(curve: dict[int, Summary]) -> int | None:
    """The budget a curve picks: its shortest budget that `convergence_verdicts` judges converged (no longer budget
    better beyond the seed spread), else its longest one (not converged, or too few seeds to tell); None for an
    empty curve."""
    for epochs in curve:
        if convergence_verdicts({("", ""): curve}, {("", ""): epochs})[0]["converged"]:
            return epochs
    return max(curve, default=None)


def convergence_sentence(row: dict) -> str:
    """One line of the report per curve: the chosen budget, what a longer one adds, and the conclusion."""
    where = f"- {row['method']}, {row['protocol']}"
    if row["gain"] is None:
        return f"{where}: the curve lacks {row['epochs']} epochs or any longer budget; convergence not shown."
    gain = (f"{row['epochs']} epochs reach {row['accuracy']:.1f} %; the best longer budget "
            f"({row['best_longer_epochs']} epochs) adds {row['gain']:+.1f} points")
    if row["converged"] is None:
        return f"{where}: {gain}, but too few seeds have finished to compare that with the seed spread."
    if row["converged"]:
        return f"{where}: {gain}, within the seed spread: converged."
    return f"{where}: {gain}, beyond the seed spread: NOT converged; raise this protocol's epochs."


def markdown_convergence(curves, chosen: dict[tuple[str, str], int], expected_n: int = 1) -> str:
    """Curves as rows, fine-tuning epochs as columns (`mean ± std`), the benchmark's budget in bold."""
    epochs = sorted({e for curve in curves.values() for e in curve})
    if not epochs:
        return "(No run of the curve has finished yet.)"
    lines = ["| Method | Protocol | " + " | ".join(f"{e} ep" for e in epochs) + " |",
             "|---|---|" + "---:|" * len(epochs)]
    for (method, protocol), curve in curves.items():
        cells = []
        for e in epochs:
            cell = curve[e].cell(expected_n) if e in curve else "—"
            cells.append(f"**{cell}**" if e in curve and e == chosen.get((method, protocol)) else cell)
        lines.append(f"| {method} | {protocol} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_convergence(curves, chosen: dict[tuple[str, str], int], path: Path, title: str,
                     metric: str = "test top-1 (%)") -> None:
    """Test top-1 against fine-tuning epochs (log scale), one line per curve; the chosen budget is a hollow marker."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    for index, ((method, protocol), curve) in enumerate(curves.items()):
        xs = list(curve)
        axis.errorbar(xs, [s.mean for s in curve.values()], [s.std for s in curve.values()], marker="o", capsize=2,
                      color=f"C{index}", label=f"{method}, {protocol}")
        if chosen.get((method, protocol)) in curve:
            epochs = chosen[method, protocol]
            axis.plot([epochs], [curve[epochs].mean], "o", markersize=12, fillstyle="none", color=f"C{index}")
    axis.set_xscale("log")
    axis.set_xlabel("fine-tuning epochs (hollow ring: the benchmark's budget)")
    axis.set_ylabel(f"{metric}, mean ± std over seeds")
    axis.set_title(title)
    if curves:
        axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, default=lambda o: o.__dict__) + "\n")
