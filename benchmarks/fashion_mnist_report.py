"""Results of the Fashion-MNIST benchmark: mean ± std over seeds, comparisons with verdicts, markdown, json and plot.

A run record is a dict `{"method": str, "protocol": str, "seed": int, "accuracy": float}` (test top-1 in [0, 1]).
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
        return f"{self.mean:.1f} ± {self.std:.1f}"

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
    """"better" / "worse" when the mean difference exceeds twice its standard error, else "no clear difference"."""
    difference = candidate.mean - reference.mean
    standard_error = math.sqrt(candidate.std**2 / candidate.n + reference.std**2 / reference.n)
    if abs(difference) > 2 * standard_error and difference != 0:
        return "better" if difference > 0 else "worse"
    return "no clear difference"


def compare(summaries, pairs, protocols) -> list[dict]:
    """One row per (candidate, reference, protocol) present in `summaries`: difference in points and verdict."""
    rows = []
    for candidate, reference in pairs:
        for protocol in protocols:
            a = summaries.get(candidate, {}).get(protocol)
            b = summaries.get(reference, {}).get(protocol)
            if a is None or b is None:
                continue
            rows.append({
                "candidate": candidate,
                "reference": reference,
                "protocol": protocol,
                "difference": a.mean - b.mean,
                "verdict": verdict(a, b),
            })
    return rows


def headlines(rows: list[dict]) -> list[str]:
    """One sentence per (candidate, reference) pair: in how many protocols the candidate is better, worse, or not
    clearly different, naming the protocols where it is not better."""
    pairs: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        pairs.setdefault((row["candidate"], row["reference"]), []).append(row)
    sentences = []
    for (candidate, reference), group in pairs.items():
        better = [r["protocol"] for r in group if r["verdict"] == "better"]
        worse = [r["protocol"] for r in group if r["verdict"] == "worse"]
        unclear = [r["protocol"] for r in group if r["verdict"] == "no clear difference"]
        parts = [f"better in {len(better)} of {len(group)}"]
        if worse:
            parts.append(f"worse in {', '.join(worse)}")
        if unclear:
            parts.append(f"no clear difference in {', '.join(unclear)}")
        sentences.append(f"- {candidate} vs {reference}: " + "; ".join(parts) + ".")
    return sentences


def markdown_table(summaries, methods: list[str], protocols: list[str], descriptions: dict[str, str],
                   expected_n: int = 1) -> str:
    """Methods as rows, protocols as columns, `mean ± std`; the best mean of every column in bold."""
    best = {p: max((summaries[m][p].mean for m in methods if p in summaries.get(m, {})), default=None)
            for p in protocols}
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
                cells.append(f"**{cell}**" if round(summary.mean, 1) == round(best[protocol], 1) else cell)
        lines.append(f"| {method} | {descriptions[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_comparisons(rows: list[dict]) -> str:
    lines = ["| Comparison | Protocol | Difference (points) | Verdict |", "|---|---|---:|---|"]
    for row in rows:
        lines.append(f"| {row['candidate']} vs {row['reference']} | {row['protocol']} | "
                     f"{row['difference']:+.1f} | {row['verdict']} |")
    return "\n".join(lines)


def plot(summaries, methods: list[str], protocols: list[str], path: Path, title: str) -> None:
    """Grouped bars: one group per protocol, one bar per method, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / len(methods)
    figure, axis = plt.subplots(figsize=(max(8, 1.6 * len(protocols) * len(methods) / 3), 5.5))
    colors = plt.get_cmap("tab10")
    all_means = []
    for index, method in enumerate(methods):
        xs, means, stds = [], [], []
        for position, protocol in enumerate(protocols):
            summary = summaries.get(method, {}).get(protocol)
            if summary is not None:
                xs.append(position - 0.4 + width * (index + 0.5))
                means.append(summary.mean)
                stds.append(summary.std)
        all_means += means
        axis.bar(xs, means, width, yerr=stds, capsize=2, label=method, color=colors(index % 10))
    axis.set_xticks(range(len(protocols)), protocols)
    axis.set_ylabel("test top-1 (%), mean ± std over seeds")
    if all_means:
        axis.set_ylim(max(0, min(all_means) - 10), min(100, max(all_means) + 5))
    axis.set_title(title)
    axis.legend(fontsize=8, ncol=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.08))
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, default=lambda o: o.__dict__) + "\n")
