"""Do A2MIM encoders transfer better to dense prediction? Semantic segmentation (UperNet) and object detection
(RT-DETR) on Fashion-MNIST scenes, from random init, SimMIM-style and A2MIM encoders of three families.

    python benchmarks/dense_transfer.py                   # segmentation, the full protocol: many hours (README)
    python benchmarks/dense_transfer.py --task detection  # detection, its own invocation and report: many hours
    python benchmarks/dense_transfer.py --quick           # a smoke version: one seed, tiny budgets, minutes
    python benchmarks/dense_transfer.py --convergence     # the random-init curves alone (the budgets), own report

The encoders are those of `benchmarks/fashion_mnist.py` (same methods, initial weights, pretraining commands, seeds
and cache, so a finished classification benchmark's ResNet and ConvNeXt pretraining runs are reused), plus a
BEiT-style ViT family (`vit-micro`), because the dense scripts take a BEiT backbone and refuse a plain `ViTModel`.
Each encoder is fine-tuned end to end with `run_semantic_segmentation.py` (UperNet, mIoU) and
`run_object_detection.py` (RT-DETR, COCO mAP), called as subprocesses with every recipe flag explicit, on
scenes of `modeling_a2mim/data/scenes.py` built from the real dataset: a label-scarce set of training scenes whose
garments come from the 60,000 training images, and evaluation scenes whose garments come from the 10,000 test images.
The random-init rows are the scripts' `--model_preset` baseline (the same network, random weights, `--seed`).

The fine-tuning budget of each family comes from its random-init convergence curve (every seed, except the family's
longest point: seed 0, judged against the shorter point's spread), which this command runs first, with the pretraining
runs queued behind it: the shortest budget on the curve that no longer budget beats beyond the seed spread
(`converged_budget`, the rule of the classification benchmark), else the curve's longest. Every method of the family
is then fine-tuned at that budget, once per pretraining seed with the same seed, so mIoU / mAP are mean ± std over
pretraining seeds and every verdict is over them. One task per invocation (`--task`, segmentation by default), each
with its own report: `benchmarks/results/dense_transfer_<task>.{json,md,png}` and `dense_transfer_<task>_curves.png`;
both tasks share the pretraining runs (the cache). Quick mode writes to `benchmarks/results/quick/` (ignored by git)
and uses its own cache folder. `--cached_only` reports what has finished without starting anything.

Each finished run's record (command, code fingerprint, machine, seconds, score; no checkpoint) is also kept in the
ledger, `benchmarks/results/dense_transfer_runs/` (committed with the reports), one file per run and code, so that a
fresh clone reports the committed runs and a benchmark longer than one machine's session adds up: a run the ledger
holds for the same command and code is not run again. A run's code is what its script imports (`code_fingerprint`),
with the torch and transformers versions, and, for a fine-tuning run from a checkpoint, the command and code of the
pretraining run that made it: a detection edit keeps the segmentation runs, and a new pretraining starts new
fine-tuning runs while the ledger keeps the earlier ones' records (the provenance of earlier reports). A run that only
the ledger holds runs again when a pending run needs its output files (a pretraining checkpoint), reproducing the
ledger's run. The report's header names the machines the runs were made on.
"""

import argparse
import collections
import dataclasses
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fashion_mnist import (  # noqa: E402
    A2MIM,
    BUDGETS,
    CNN_SIMMIM_STYLE,
    METHODS,
    RANDOM_INIT,
    RESULTS_DIR,
    SIMMIM,
    Budget,
    Ledger,
    Method,
    Plan,
    Row,
    Run,
    add_run_arguments,
    code_fingerprint,
    commands_lines,
    comparison_pairs,
    evaluation_dir,
    evaluation_records,
    execute,
    export_fashion_mnist,
    missing_lines,
    nothing_finished,
    pretraining_run,
    report_header,
    seeds_phrase,
    slug,
    table_rows,
    verdict_lines,
    write_initial_encoders,
)
from benchmarks.fashion_mnist_report import (  # noqa: E402
    compare,
    converged_budget,
    convergence_curves,
    convergence_sentence,
    convergence_verdicts,
    markdown_convergence,
    markdown_table,
    plot,
    plot_convergence,
    summarize,
    write_json,
)

SCRIPT = "benchmarks/dense_transfer.py"
LEDGER = "dense_transfer_runs"  # the `Ledger` of the finished runs, in the results folder (committed with them)
SEGMENTATION, DETECTION = "segmentation", "detection"

# The BEiT-style family: the `vit-micro` preset (BEiT encoder, 32 px, patch 4). Its SimMIM-style row is the CNNs'
# (the token replaces the patch embeddings, mask_layer 0, no mean fill, L1, no frequency loss) through
# run_pretraining.py: transformers' SimMIM class for BEiT (`BeitForMaskedImageModeling`) predicts visual tokens.
BEIT_METHODS = [
    Method("BEiT random init", "vit-micro (BEiT-style ViT 96x4), 32 px, no pretraining", "beit", RANDOM_INIT,
           preset="vit-micro"),
    Method("BEiT SimMIM-style", "vit-micro, token replaces the patch embeddings, no mean fill, L1, no freq", "beit",
           SIMMIM, "run_pretraining.py", preset="vit-micro", overrides=CNN_SIMMIM_STYLE),
    Method("BEiT A2MIM", "vit-micro, A2MIM (L1 + 0.1 freq, mean fill)", "beit", A2MIM, "run_pretraining.py",
           preset="vit-micro"),
]
DENSE_METHODS = [m for m in METHODS if m.family in ("resnet", "convnext") and m.role != "ablation"] + BEIT_METHODS


@dataclass(frozen=True)
class Task:
    """A dense task: its script, the metric it reports (`all_results.json` key), its families with their scene
    side, and its fine-tuning recipe (`flags`, the same for every method; the budget is set per family)."""

    name: str  # SEGMENTATION or DETECTION
    script: str
    metric: str
    column: str  # the table's column
    scene_sizes: dict[str, int]  # family -> scene side in pixels (the families this task runs)
    batch_size: int
    convergence_epochs: tuple[int, ...]  # the random-init curve's budgets, in epochs over the training scenes
    flags: tuple[str, ...]
    family_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)  # family -> its flags beyond `flags`
    # The curve's costly points -> the seeds that run them when the point is the family's longest (the others: every
    # seed). A point of one seed is judged against the shorter budget's seed spread
    # (`fashion_mnist_report.curve_verdict`), so a point that a longer one is judged against runs every seed; when the
    # curve picks its longest point, the fine-tuning phase runs the random-init row at it with the remaining seeds.
    convergence_seeds: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # family -> its curve's longest budget, where the curve of another family goes further (a family whose curve
    # converged does not run the costlier points)
    curve_limits: dict[str, int] = field(default_factory=dict)

    def curve_epochs(self, family: str) -> tuple[int, ...]:
        limit = self.curve_limits.get(family)
        return tuple(e for e in self.convergence_epochs if limit is None or e <= limit)

    def curve_seeds(self, family: str, epochs: int, seeds: tuple[int, ...]) -> tuple[int, ...]:
        if epochs < max(self.curve_epochs(family)):
            return seeds
        return tuple(s for s in seeds if s in self.convergence_seeds.get(epochs, seeds))

    def data_flags(self, scenes: Path, size: int) -> list[str]:
        if self.name == SEGMENTATION:
            return ["--label_column_name", "annotation", "--id2label", str(scenes / "id2label.json")]
        return ["--image_square_size", str(size)]


# UperNet as the script's CPU default (`PLAIN`: AdamW + poly), written out. The UperHead works at its finest map: the
# CNNs' stride-4 stage (16x16 at 64 px) with the default 64 channels, BEiT's x4 pyramid level, which for patch-4
# tokens is the whole 32x32 scene, 4x the pixels; at 32 channels (a quarter of the 3x3 convolutions' cost) BEiT's
# head costs per scene about what the CNNs' does: BEiT fine-tuning drops from 0.16 to 0.09 s/step (0.37 to 0.23 busy).
# The CNNs' learning rate is 1e-2: from random init, in probes by hand, ResNet at 80 epochs reached 40.5 +- 0.7 mIoU
# at 1e-2 against the curve's 37.6 +- 0.2 at 3e-3 (160 epochs, seed 0: 44.5 against 40.4), and ConvNeXt at 40 epochs
# (seed 0) 18.9 against 17.0 +- 0.6. BEiT keeps 3e-3: at 80 epochs (seed 0, by hand) 6e-3 and 1e-2 reached 11.2 and
# 11.3 mIoU against 10.6.
SEGMENTATION_FLAGS = ("--weight_decay", "0.01", "--warmup_steps", "0.05", "--min_resize_ratio", "0.75",
                      "--max_resize_ratio", "1.5")
SEGMENTATION_FAMILY_FLAGS = {"resnet": ("--learning_rate", "1e-2", "--head_channels", "64"),
                             "convnext": ("--learning_rate", "1e-2", "--head_channels", "64"),
                             "beit": ("--learning_rate", "3e-3", "--head_channels", "32")}
# RT-DETR, CPU-sized as the README's detection command (the backbone at the head's learning rate). Conditional DETR
# (same size, lr 3e-4) stayed at mAP 0.0-0.1 % up to 1280 epochs on these scenes (commit 7bc46f1); RT-DETR reached
# 12.5 % after 40 epochs at lr 1e-3 (6.8 % at 3e-4) in a probe by hand on ResNet random init.
DETECTION_FLAGS = ("--detector", "rt_detr", "--num_queries", "10", "--d_model", "64", "--encoder_layers", "1",
                   "--decoder_layers", "3", "--attention_heads", "4", "--ffn_dim", "256", "--num_denoising", "20",
                   "--learning_rate", "1e-3", "--backbone_lr_multiplier", "1", "--weight_decay", "1e-4",
                   "--max_grad_norm", "0.1", "--warmup_steps", "0.05")
TASKS = (
    # Scenes at each encoder's pretraining resolution (the BEiT encoder cannot take another one).
    # A family's longest curve point, if costly, runs seed 0 only (as the classification benchmark's 640 epochs): 2 of
    # its 3 runs are the costliest of the curve, and they are run anyway, in the fine-tuning phase, when the curve
    # picks it. A costly point before it runs every seed (`Task.curve_seeds`): with seed 0 alone at 320 and at 640,
    # 640 could not be judged, and the curve would pick it by default.
    # ConvNeXt still rose by 2.9 points from 160 to 320 epochs (beyond the seed spread), BEiT by 7.8 (seeds 0 and 1 at
    # 160, seed 0 at 320); ResNet was converged at 160.
    Task(SEGMENTATION, "run_semantic_segmentation.py", "eval_mean_iou", "mIoU (segmentation)",
         {"resnet": 64, "convnext": 64, "beit": 32}, 8, (80, 160, 320, 640), SEGMENTATION_FLAGS,
         SEGMENTATION_FAMILY_FLAGS, convergence_seeds={320: (0,), 640: (0,)}, curve_limits={"resnet": 320}),
    # The CNNs' maps at strides 8, 16, 32 are 12x12, 6x6 and 3x3 at 96 px. The curve went to 80 epochs first (the
    # comparison of commit 48e2332 ran there); ResNet random init still rose by 13 points from 40 to 80, and by 6.2
    # from 160 to 320 (beyond the seed spread), so its curve goes on to 640; ConvNeXt was converged at 160.
    Task(DETECTION, "run_object_detection.py", "eval_map", "mAP (detection)",
         {"resnet": 96, "convnext": 96, "beit": 32}, 16, (20, 40, 80, 160, 320, 640), DETECTION_FLAGS,
         convergence_seeds={320: (0,), 640: (0,)}, curve_limits={"convnext": 320, "beit": 320}),
)


def scene_description(method: Method, task: Task) -> str:
    """The method's description with the side it names (the classification input, e.g. "64 px") replaced by the
    task's scene side for its family: the detection scenes of the CNNs are 96 px."""
    return re.sub(r"\b\d+ px\b", f"{task.scene_sizes[method.family]} px", method.description)


@dataclass(frozen=True)
class DenseBudget:
    """What a mode fixes: the pretraining (a `fashion_mnist.Budget`; its `mode` names the cache folder, shared with
    the classification benchmark of that budget), the scenes, the tasks and the seeds."""

    mode: str
    pretraining: Budget
    train_scenes: int  # the label-scarce fine-tuning set
    eval_scenes: int
    tasks: tuple[Task, ...]
    seeds: tuple[int, ...]

    def steps(self, task: Task, epochs: int) -> int:
        return math.ceil(epochs * self.train_scenes / task.batch_size)


BUDGETS_DENSE = {
    # 400 scenes hold about 1,000 garments: the classification benchmark's 100 labels per class.
    "full": DenseBudget("full", BUDGETS["full"], train_scenes=400, eval_scenes=1000, tasks=TASKS, seeds=(0, 1, 2)),
    "quick": DenseBudget(
        "quick",
        dataclasses.replace(BUDGETS["quick"], mode="dense-quick", pretrain_epochs=(0.05,)),  # 23 steps
        train_scenes=32, eval_scenes=16, seeds=(0,),
        tasks=tuple(dataclasses.replace(task, convergence_epochs=(1, 2), convergence_seeds={},
                                              curve_limits={}) for task in TASKS),
    ),
}


def export_scenes(cache_dir: Path, train_scenes: int, eval_scenes: int, size: int) -> Path:
    """A `save_to_disk` folder with `train` (garments from the 60,000 training images) and `validation` (from the
    10,000 test images) scenes of side `size` (scene seed 0), and the masks' `id2label.json`; reused when present."""
    from datasets import DatasetDict

    from modeling_a2mim.data.fashion_mnist import DEFAULT_DIR, read_fashion_mnist
    from modeling_a2mim.data.scenes import SCENE_ID2LABEL, scene_dataset

    folder = cache_dir / f"scenes_{train_scenes}_train_{eval_scenes}_test_{size}px"
    if (folder / "id2label.json").is_file():
        return folder
    source = Path(os.environ.get("FASHION_MNIST_DIR", DEFAULT_DIR))
    read_fashion_mnist("test", source)  # the install instructions, before anything is written
    temporary = folder.with_name(folder.name + ".tmp")
    DatasetDict({"train": scene_dataset("train", train_scenes, size, 0, source),
                 "validation": scene_dataset("test", eval_scenes, size, 0, source)}).save_to_disk(str(temporary))
    (temporary / "id2label.json").write_text(json.dumps(SCENE_ID2LABEL) + "\n")
    temporary.rename(folder)
    return folder


def dense_run(task: Task, row: Row, seed: int, epochs: int, budget: DenseBudget, scenes: dict[int, Path],
              checkpoint: Path | None, run_dir: Path) -> Run:
    """Fine-tune `checkpoint` (None: the family's preset from random init) on `task` for `epochs` over the training
    scenes, with `seed`; the result maps the task's column to its metric."""
    family = row.method.family
    size = task.scene_sizes[family]
    output_dir = evaluation_dir(row, seed, run_dir) / slug(f"{task.name} {epochs} ep")
    start = ["--model_preset", row.method.preset] if checkpoint is None else ["--model_name_or_path", str(checkpoint)]
    command = [
        sys.executable, task.script, *start,
        "--dataset_name", str(scenes[size]), "--image_column_name", "image", *task.data_flags(scenes[size], size),
        "--output_dir", str(output_dir / "result"),
        "--max_steps", str(budget.steps(task, epochs)),
        "--per_device_train_batch_size", str(task.batch_size),
        "--per_device_eval_batch_size", "64",
        *task.flags,
        *task.family_flags.get(family, ()),
        "--do_train", "--do_eval",
        "--eval_strategy", "no",
        "--save_strategy", "no",
        "--report_to", "none",
        "--dataloader_num_workers", "0",
        "--seed", str(seed),
        "--use_cpu",
    ]

    def read_result(output_dir: Path) -> dict:
        metrics = json.loads((output_dir / "result" / "all_results.json").read_text())
        return {"accuracies": {task.column: metrics[task.metric]}}

    return Run(f"{task.name} {epochs} ep {row.name} seed {seed}", command, output_dir, read_result,
               record={"method": row.name, "seed": seed, "epochs": epochs})


def random_init_row(rows: list[Row], family: str) -> Row | None:
    return next((r for r in rows if r.method.family == family and r.epochs is None), None)


def curve_point_runs(rows: list[Row], budget: DenseBudget, scenes, run_dir: Path, in_curve: bool) -> list[Run]:
    """The random-init rows at every budget of their tasks' curves, with the seeds of `Task.curve_seeds`
    (`in_curve`) or with the seeds the curve leaves out; CNN families first, each family's longest budget first (so
    that parallel jobs end together)."""
    return [dense_run(task, row, seed, epochs, budget, scenes, None, run_dir)
            for row in sorted((r for r in rows if r.epochs is None), key=lambda r: r.method.family == "beit")
            for task in budget.tasks if row.method.family in task.scene_sizes
            for epochs in sorted(task.curve_epochs(row.method.family), reverse=True)
            for seed in budget.seeds if (seed in task.curve_seeds(row.method.family, epochs, budget.seeds)) == in_curve]


def plan_curve(rows: list[Row], budget: DenseBudget, scenes, run_dir: Path) -> Plan:
    """The runs of the random-init curves (`curve_point_runs`)."""
    return Plan(curve_point_runs(rows, budget, scenes, run_dir, in_curve=True), [])


def left_out_seeds(rows: list[Row], budget: DenseBudget, scenes, run_dir: Path) -> Plan:
    """The random-init runs at the curves' costly longest points with the seeds the curve leaves out
    (`Task.curve_seeds`): the fine-tuning phase runs them when the curve picks that point; once they have finished, the
    curve counts them (never planned to run from here)."""
    return Plan(curve_point_runs(rows, budget, scenes, run_dir, in_curve=False), [])


def chosen_budgets(curve_records: list[dict], rows: list[Row], budget: DenseBudget,
                   compared=lambda family, task, epochs: False) -> dict[tuple[str, str], int]:
    """`{(random-init row, task column): epochs}` picked by `converged_budget` on each curve (its longest budget
    while no run of it has finished). A longer budget at which the family's comparison has already run
    (`compared(family, task, epochs)`, e.g. picked before the curve had all its seeds) is kept instead: a budget past a
    converged one answers the question as well, and it costs no run."""
    curves = convergence_curves(curve_records)
    chosen = {}
    for task in budget.tasks:
        for family in task.scene_sizes:
            row = random_init_row(rows, family)
            if row is not None:
                curve = curves.get((row.name, task.column), {})
                shortest = converged_budget(curve) or max(task.curve_epochs(family))
                chosen[row.name, task.column] = min(
                    (e for e in task.curve_epochs(family) if e > shortest and compared(family, task, e)),
                    default=shortest)
    return chosen


def compared_budgets(rows: list[Row], budget: DenseBudget, data: dict[str, Path], scenes, run_dir: Path,
                     ledger: Ledger):
    """`compared(family, task, epochs)` for `chosen_budgets`: has every row of the family finished its fine-tuning
    on the task at that budget (cache or ledger)?"""
    def compared(family: str, task: Task, epochs: int) -> bool:
        members = [r for r in rows if r.method.family == family]
        single = dataclasses.replace(budget, tasks=(task,))
        at = {(random_init_row(members, family).name, task.column): epochs}
        plan = with_ledger(plan_transfer(members, single, at, data, scenes, run_dir), ledger)
        return all(run.cached_result() is not None for run in plan.evaluations)

    return compared


def families_in_order(rows: list[Row]) -> list[str]:
    """The families of `rows`, CNNs first (the costlier ViT family last)."""
    return sorted(dict.fromkeys(r.method.family for r in rows), key=lambda family: family == "beit")


def pretraining_runs(rows: list[Row], budget: DenseBudget, data: dict[str, Path],
                     run_dir: Path) -> dict[tuple[str, int], Run]:
    """`{(row name, seed): run}`: the pretraining runs of `rows` (`fashion_mnist.pretraining_run`, the classification
    benchmark's own), family by family (`families_in_order`)."""
    return {(r.name, seed): pretraining_run(r, seed, budget.pretraining, data, run_dir)
            for family in families_in_order(rows) for r in rows if r.method.family == family and r.epochs is not None
            for seed in budget.seeds}


def plan_transfer(rows: list[Row], budget: DenseBudget, chosen: dict[tuple[str, str], int], data: dict[str, Path],
                  scenes, run_dir: Path) -> Plan:
    """Family by family (CNNs first): the pretraining runs (`fashion_mnist.pretraining_run`, the classification
    benchmark's own), then every row's fine-tuning on every task at the family's chosen budget, each after its
    pretraining."""
    runs, examples = [], {}
    for family in families_in_order(rows):
        members = [r for r in rows if r.method.family == family]
        random_init = random_init_row(rows, family)
        pretraining = pretraining_runs(members, budget, data, run_dir)
        runs += pretraining.values()
        for task in budget.tasks:
            if family not in task.scene_sizes or random_init is None:
                continue
            epochs = chosen[random_init.name, task.column]
            for row in members:
                for seed in budget.seeds:
                    before = pretraining.get((row.name, seed))
                    checkpoint = None if before is None else before.output_dir / "checkpoint"
                    run = dense_run(task, row, seed, epochs, budget, scenes, checkpoint, run_dir)
                    runs.append(run)
                    examples.setdefault((task.name, before is None), run)
                    run.source = before
    return Plan(runs, list(examples.values()))


def unfinished_points(curve: Plan, missing: list[str], chosen: dict[tuple[str, str], int],
                      column: str) -> dict[tuple[str, str], list[int]]:
    """`{(random-init row, column): budgets}`, sorted, of the curve's runs in `missing` (not finished) that are longer
    than the row's chosen budget: such a curve has not finished, and its longest finished point is no pick."""
    later = {}
    for run in curve.runs:
        key = (run.record["method"], column)
        if run.key in missing and run.record["epochs"] > chosen.get(key, math.inf):
            later.setdefault(key, set()).add(run.record["epochs"])
    return {key: sorted(epochs) for key, epochs in later.items()}


def picked_budgets(chosen: dict[tuple[str, str], int], unfinished: dict[tuple[str, str], list[int]]):
    """`chosen` without the curves in `unfinished` (`unfinished_points`)."""
    return {key: epochs for key, epochs in chosen.items() if key not in unfinished}


def budget_sentences(curves, chosen: dict[tuple[str, str], int], unfinished=None) -> list[str]:
    """Per curve, why its budget: the convergence verdict at the chosen budget, or, when the chosen one is the curve's
    longest, the verdict at the budget before it (what made the choice fall through to the longest). In the full
    report that verdict counts the seeds the fine-tuning phase added at the longest budget, which the choice, made
    before them, could not: the shorter budget may then be converged, and the runs' budget past it. A curve with a
    longer point still to run (`unfinished_points`) says so instead of naming its budget."""
    sentences = []
    for key, epochs in chosen.items():
        curve = curves.get(key, {})
        shorter = [e for e in curve if e < epochs]
        later = (unfinished or {}).get(key)
        pending = (f" The curve has not finished ({', '.join(map(str, later))} epochs to run): no budget is picked yet."
                   if later else "")
        if epochs in curve and epochs == max(curve) and shorter:
            row = convergence_verdicts({key: curve}, {key: max(shorter)})[0]
            why = "which is not shown converged."
            if row["converged"]:
                why = (f"which the curve picked before its other seeds had run; with them, {max(shorter)} epochs are "
                       f"converged and {epochs} epochs past that.")
            sentences.append(convergence_sentence(row)
                             + (pending or f" The runs use the curve's longest budget, {epochs} epochs, {why}"))
        else:  # converged at `epochs`, or no longer point finished; a verdict on a longer point with seeds to come
            sentences.append(convergence_sentence(convergence_verdicts({key: curve}, {key: epochs})[0]) + pending)
    return sentences


def protocol_lines(budget: DenseBudget) -> list[str]:
    pretraining = budget.pretraining
    epochs = pretraining.pretrain_epochs[0]
    lines = [
        f"- Pretraining (no labels, `benchmarks/fashion_mnist.py`'s runs): {epochs:g} epoch(s) = "
        f"{pretraining.pretrain_steps(epochs)} steps x batch {pretraining.pretrain_batch_size} of the 60,000 "
        "Fashion-MNIST training images for every pretrained row, from the family's random encoder at that seed.",
        f"- Scenes (`modeling_a2mim/data/scenes.py`, scene seed 0): {budget.train_scenes} training scenes whose "
        f"garments come from the 60,000 training images (the label-scarce set), {budget.eval_scenes} evaluation "
        "scenes whose garments come from the 10,000 test images.",
    ]
    for task in budget.tasks:
        sizes = ", ".join(f"{family} {size} px" for family, size in task.scene_sizes.items())
        per_family = "".join(f", {family} `{' '.join(flags)}`" for family, flags in task.family_flags.items()
                             if family in task.scene_sizes)
        limits = "".join(f", {family} up to {limit}" for family, limit in task.curve_limits.items()
                         if family in task.scene_sizes)
        lines.append(f"- {task.name.capitalize()} (`{task.script}`, batch {task.batch_size}, scenes: {sizes}): "
                     f"`{' '.join(task.flags)}`{per_family}; random-init curve at "
                     f"{', '.join(map(str, task.convergence_epochs))} epochs over the training scenes{limits}; "
                     f"metric `{task.metric}`.")
    lines.append(f"- Seeds: pretraining seeds {', '.join(map(str, budget.seeds))}; seed s fixes the initial encoder, "
                 "its pretraining and its one fine-tuning run per task (same seed): mean ± sample std over seeds.")
    return lines


def write_report(budget: DenseBudget, rows: list[Row], records: list[dict], curve_records: list[dict],
                 chosen: dict[tuple[str, str], int], pretraining: list[dict], examples: list[Run], missing: list[str],
                 planned: int, run_seconds: float, machines: dict[str, int], args, argv: list[str]) -> None:
    columns = [task.column for task in budget.tasks]
    names = [r.name for r in rows]
    summaries = summarize(records)
    comparisons = compare(records, comparison_pairs(rows), columns)
    curves = convergence_curves(curve_records)
    verdicts = convergence_verdicts(curves, chosen)
    (task,) = budget.tasks
    code = report_code(task)
    stem = report_stem(task)
    header, fields = report_header(f"Dense transfer: do A2MIM encoders pay off for {task.name}? ({budget.mode} mode)",
                                   run_seconds, args.jobs, argv, args.note, SCRIPT, code, machines)
    seeds = len(budget.seeds)
    results_dir = args.results_dir
    markdown = "\n".join([
        *header,
        f"{task.column} (%) on the evaluation scenes, {seeds_phrase(seeds)}; best of each family in bold (the "
        "comparisons are within a family); — : no finished run.",
        "",
        *missing_lines(missing, planned),
        markdown_table(summaries, names, columns, {r.name: scene_description(r.method, task) for r in rows}, seeds,
                       groups={r.name: r.method.family for r in rows}),
        "",
        *verdict_lines(comparisons),
        "## Fine-tuning budget: the random-init curves",
        "",
        *curve_lines(task, curves, chosen, seeds, f"{stem}_curves.png"),
        "## Protocol",
        "",
        *protocol_lines(budget),
        "",
        *commands_lines(pretraining, budget.seeds[0], examples),
    ])
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{stem}.md").write_text(markdown)
    plot(summaries, names, columns, results_dir / f"{stem}.png",
         f"Dense transfer ({task.name}), {budget.mode} mode, {seeds} pretraining seed(s)", metric=task.column)
    plot_curves(budget, curves, chosen, results_dir / f"{stem}_curves.png")
    write_json(results_dir / f"{stem}.json", {
        **fields,
        "budget": asdict(budget),
        "methods": [asdict(m) for m in {r.method.name: r.method for r in rows}.values()],
        "chosen_epochs": [{"method": method, "protocol": column, "epochs": epochs}
                          for (method, column), epochs in chosen.items()],
        "summary": {m: {p: asdict(s) for p, s in by_column.items()} for m, by_column in summaries.items()},
        "comparisons": comparisons,
        "convergence_verdicts": verdicts,
        "pretraining": pretraining,
        "missing_runs": missing,
        "runs": records,
        "convergence_runs": curve_records,
    })


def curve_lines(task: Task, curves, chosen: dict[tuple[str, str], int], seeds: int, picture: str,
                unfinished=None) -> list[str]:
    """The reports' section on the random-init curves: the rule, the table, why each budget, the plot (`picture`);
    a curve with points still to run (`unfinished_points`) has no bold budget."""
    single = " or ".join(f"{epochs} epochs (seed {', '.join(map(str, chosen_seeds))} only)"
                         for epochs, chosen_seeds in task.convergence_seeds.items() if len(chosen_seeds) < seeds)
    return [
        "Each family fine-tunes at the shortest budget of its random-init curve that no longer budget beats beyond "
        "the seed spread (bold), else at the curve's longest, or at a longer budget where the family's comparison "
        "has already run (past a converged budget); every method of the family gets that budget."
        + (f" A family's longest curve point, at {single}, is judged against the shorter budget's seed spread; "
           "the remaining seeds run in the fine-tuning phase when the curve picks it, and the curve counts them once "
           "finished." if single else ""),
        "",
        markdown_convergence(curves, picked_budgets(chosen, unfinished or {}), seeds),
        "",
        *budget_sentences(curves, chosen, unfinished),
        "",
        f"![curves]({picture})",
        "",
    ]


def plot_curves(budget: DenseBudget, curves, chosen: dict[tuple[str, str], int], path: Path) -> None:
    """The random-init curves' picture: each report has its own (`dense_transfer_<task>_curves.png`, with the seeds
    of the fine-tuning phase; `dense_transfer_<task>_convergence.png`, the curve runs alone)."""
    (task,) = budget.tasks
    plot_convergence(curves, chosen, path,
                     f"Dense transfer ({task.name}), {budget.mode} mode: random-init fine-tuning vs epochs",
                     task.column)


def write_convergence_report(budget: DenseBudget, curve: Plan, curve_records: list[dict],
                             chosen: dict[tuple[str, str], int], missing: list[str], run_seconds: float,
                             machines: dict[str, int], args, argv: list[str]) -> None:
    """`--convergence`: the random-init curves alone (`dense_transfer_<task>_convergence.{md,json,png}`), the
    budget each family's fine-tuning phase would run at."""
    (task,) = budget.tasks
    stem = f"{report_stem(task)}_convergence"
    curves = convergence_curves(curve_records)
    header, fields = report_header(f"Dense transfer ({task.name}): is the random-init fine-tuning converged? "
                                   f"({budget.mode} mode)", run_seconds, args.jobs, argv, args.note, SCRIPT,
                                   report_code(task), machines)
    examples = {}
    for run in curve.runs:  # each family's longest run, its first
        examples.setdefault(run.record["method"], run)
    unfinished = unfinished_points(curve, missing, chosen, task.column)
    picked = picked_budgets(chosen, unfinished)
    markdown = "\n".join([
        *header,
        f"{task.column} (%) on the evaluation scenes of the random-init rows against the fine-tuning budget, "
        f"{seeds_phrase(len(budget.seeds))}.",
        "",
        *missing_lines(missing, len(curve.runs)),
        *curve_lines(task, curves, chosen, len(budget.seeds), f"{stem}.png", unfinished),
        "## Protocol",
        "",
        *protocol_lines(budget),
        "",
        *commands_lines([], budget.seeds[0], list(examples.values())),
    ])
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{stem}.md").write_text(markdown)
    plot_curves(budget, curves, picked, args.results_dir / f"{stem}.png")
    write_json(args.results_dir / f"{stem}.json", {
        **fields, "budget": asdict(budget), "missing_runs": missing, "runs": curve_records,
        "convergence_verdicts": convergence_verdicts(curves, picked),
        "chosen_epochs": [{"method": method, "protocol": column, "epochs": epochs}
                          for (method, column), epochs in picked.items()],
    })


def run_machines(*results: dict[str, dict]) -> dict[str, int]:
    """`{machine: finished runs}` of `execute`'s results, for the reports' headers (a ledger's runs may come from
    other machines)."""
    return dict(collections.Counter(result.get("machine", "an unrecorded machine")
                                    for found in results for result in found.values()))


def with_ledger(plan: Plan, ledger: Ledger) -> Plan:
    """`plan`, its runs keeping their records in `ledger` too."""
    for run in plan.runs:
        run.ledger = ledger
    return plan


def report_code(task: Task) -> str:
    """The code fingerprint a task's report names: its runs' scripts (pretraining and the task's own)."""
    return code_fingerprint(("run_pretraining.py", task.script))


def report_stem(task: Task) -> str:
    """The report's file names without extension: one report per task (each is its own invocation)."""
    return f"dense_transfer_{task.name}"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="The smoke budget instead of the full one.")
    parser.add_argument("--task", choices=[SEGMENTATION, DETECTION], default=SEGMENTATION,
                        help="The task this invocation runs and reports (default: segmentation; detection is its "
                        "own invocation, with its own report, after or without segmentation).")
    parser.add_argument("--families", nargs="+", choices=["resnet", "convnext", "beit"], help="Only these families.")
    parser.add_argument("--convergence", action="store_true",
                        help="Only the random-init curves: writes dense_transfer_<task>_convergence.{json,md,png} "
                        "and starts no pretraining or fine-tuning of the other rows.")
    add_run_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.results_dir = args.results_dir or (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR)
    budget = BUDGETS_DENSE["quick" if args.quick else "full"]
    tasks = tuple(t for t in budget.tasks if t.name == args.task)
    families = args.families or ["resnet", "convnext", "beit"]
    tasks = tuple(dataclasses.replace(t, scene_sizes={f: s for f, s in t.scene_sizes.items() if f in families})
                  for t in tasks)
    budget = dataclasses.replace(budget, tasks=tasks)
    methods = [m for m in DENSE_METHODS if m.family in families]
    rows = table_rows(methods, budget.pretraining)
    pretraining = budget.pretraining
    data = export_fashion_mnist(args.cache_dir / "data", pretraining.pretrain_images, pretraining.test_per_class)
    sizes = sorted({size for task in tasks for size in task.scene_sizes.values()})
    scenes = {size: export_scenes(args.cache_dir / "data", budget.train_scenes, budget.eval_scenes, size)
              for size in sizes}
    run_dir = args.cache_dir / pretraining.mode
    write_initial_encoders(methods, budget.seeds, run_dir)
    ledger = Ledger(args.results_dir / LEDGER, run_dir)

    curve = with_ledger(plan_curve(rows, budget, scenes, run_dir), ledger)
    # The pretraining runs wait for no budget: queued behind the curve, they take the lanes its last long points leave
    # idle (the fine-tuning phase then reuses them).
    ahead = [] if args.convergence else list(pretraining_runs(rows, budget, data, run_dir).values())
    first, _, _ = execute(with_ledger(Plan([*curve.runs, *ahead], []), ledger), args)
    curve_results = {run.key: first[run.key] for run in curve.runs if run.key in first}
    curve_missing = [run.key for run in curve.runs if run.key not in first]
    curve_seconds = sum(result["seconds"] for result in curve_results.values())
    spare = with_ledger(left_out_seeds(rows, budget, scenes, run_dir), ledger)
    spare_results = {run.key: result for run in spare.runs if (result := run.cached_result()) is not None}
    counted = [*curve.runs, *(run for run in spare.runs if run.key in spare_results)]  # the curve, every seed
    curve_results = {**curve_results, **spare_results}
    curve_seconds += sum(result["seconds"] for result in spare_results.values())
    curve_records = evaluation_records(counted, curve_results)
    chosen = chosen_budgets(curve_records, rows, budget, compared_budgets(rows, budget, data, scenes, run_dir, ledger))
    if args.convergence:
        report = args.results_dir / f"{report_stem(tasks[0])}_convergence.md"
        if not nothing_finished(curve_missing, curve, report, argv, SCRIPT):
            write_convergence_report(budget, curve, curve_records, chosen, curve_missing, curve_seconds,
                                     run_machines(curve_results), args, argv)
            print(report.read_text())
        return
    plan = with_ledger(plan_transfer(rows, budget, chosen, data, scenes, run_dir), ledger)
    results, missing, _ = execute(plan, args)
    curve_keys = {run.key for run in counted}  # the random-init runs at the chosen budgets are curve runs
    both = Plan([*counted, *(run for run in plan.runs if run.key not in curve_keys)], [])
    missing_all = list(dict.fromkeys([*curve_missing, *missing]))
    report = args.results_dir / f"{report_stem(tasks[0])}.md"
    if nothing_finished(missing_all, both, report, argv, SCRIPT):
        return
    done = [{**run.record, **results[run.key]} for run in plan.runs if run.key.startswith("pretrain ")
            and run.key in results]
    evaluations = [run for run in plan.runs if not run.key.startswith("pretrain ")]
    # The report's curves count every random-init run, also the seeds that the fine-tuning phase added at the chosen
    # budget (a curve point of seed 0 only gets its other seeds there).
    random_init = {row.name for row in rows if row.epochs is None}
    every_seed = curve_records + [record for record in evaluation_records(
        [run for run in evaluations if run.key not in curve_keys], results) if record["method"] in random_init]
    seconds = curve_seconds + sum(result["seconds"] for key, result in results.items() if key not in curve_keys)
    machines = run_machines(curve_results, {key: result for key, result in results.items() if key not in curve_keys})
    write_report(budget, rows, evaluation_records(evaluations, results), every_seed, chosen, done, plan.examples,
                 missing_all, len(both.runs), seconds, machines, args, argv)
    print(report.read_text())


if __name__ == "__main__":
    main()
