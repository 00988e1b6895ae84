"""Does A2MIM pretraining pay off on real data? Fashion-MNIST, against no pretraining and SimMIM, on a ViT, a ResNet
and a ConvNeXt.

    python benchmarks/fashion_mnist.py --convergence  # once: the random-init fine-tuning curve, 4 h of runs
    python benchmarks/fashion_mnist.py                # the full protocol, 10 h of runs, 5 h at --jobs 2 (resumable)
    python benchmarks/fashion_mnist.py --quick        # a smoke version: one seed, short budgets, 14 min

(Run times measured on 2 cores, partly shared with other work: the reports' headers sum 243 and 588 run-minutes; the
tiny ViT fine-tunes at ~230 and pretrains at ~170 images/s per core, the CNNs are about 3x faster, and each run starts
up in ~15 s. The two commands share the random-init runs at the benchmark's budget.)

Every pretrained row pretrains WITHOUT labels on the 60,000 Fashion-MNIST training images for the same number of
images (same steps, batch size, optimizer and schedule) from the same initial encoder weights as its family's
random-init row, once per pretraining seed (3 in full mode). Each encoder is then fine-tuned end to end with 100
labels per class and probed on frozen features (linear probe and k-NN on the mean of the last layer's patch tokens).
There is no all-labels column: a converged one is out of reach of 2 cores (see `BUDGETS`). One fine-tuning run per
pretraining seed, with the same seed (which also draws the labelled subsets), so test top-1 is reported as mean ± std
over pretraining seeds and every verdict is over pretraining seeds. Each family's fine-tuning budget comes from its
random-init curve (`--convergence`), which goes up to twice the budget; the headline pair (ViT SimMIM, ViT A2MIM) is
also pretrained at a longer budget.
The runs go through the project's entry points as subprocesses (`run_pretraining.py`, `run_finetuning.py`,
`run_linear_probe.py`, and `benchmarks/simmim_pretraining.py`, which drives transformers' `ViTForMaskedImageModeling`
with the same data path and Trainer). Results: `benchmarks/results/fashion_mnist.{json,md,png}` and
`benchmarks/results/fashion_mnist_convergence.{json,md,png}`; quick mode writes its own in `benchmarks/results/quick/`
(ignored by git), so a smoke run never overwrites the full results. Quick mode runs every method and column once (one
seed, so its verdicts say "too few seeds"): it checks the pipeline, it does not answer the question.

Fashion-MNIST comes from the Debian package `dataset-fashion-mnist` (or `FASHION_MNIST_DIR`); the data, the
checkpoints and the logs of every run go to `benchmarks/cache/` (ignored by git); finished runs with the same command
line and the same code (`Run.identity`: the files its script imports, `code_fingerprint`, the torch and transformers
versions, and for an evaluation the pretraining run it starts from) are reused, so an interrupted benchmark resumes
where it stopped, and the
convergence curve's run at the benchmark's budget is the benchmark's random-init run (`--cached_only` reports what has
finished without starting anything). Runs start in priority order (`priority`): an interrupted run has the main rows'
comparisons first, then the ablations, then the longer pretraining budget.
"""

import argparse
import ast
import dataclasses
import functools
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fashion_mnist_data import export_fashion_mnist  # noqa: E402
from benchmarks.fashion_mnist_report import (  # noqa: E402
    compare,
    convergence_curves,
    convergence_sentence,
    convergence_verdicts,
    headlines,
    markdown_budget_table,
    markdown_comparisons,
    markdown_convergence,
    markdown_table,
    plot,
    plot_convergence,
    summarize,
    write_json,
)
from benchmarks.machine import cpu_model, utc_timestamp  # noqa: E402

RESULTS_DIR = REPO / "benchmarks" / "results"
CACHE_DIR = REPO / "benchmarks" / "cache"

# One plain ViT encoder for SimMIM, A2MIM and random init (the sizes of the `vit-micro` preset): 32 px, patch 4.
VIT_ENCODER = {
    "model_type": "vit",
    "hidden_size": 96,
    "num_hidden_layers": 4,
    "num_attention_heads": 3,
    "intermediate_size": 384,
    "patch_size": 4,
    "image_size": 32,
    "encoder_stride": 4,
}
# The ResNet is the `resnet-micro` preset: 64 px, 16 px mask blocks, A2MIM's mask token at the last stage (stride 16).

# What a method is to the comparisons: each family's A2MIM row is compared with its SimMIM row and its random-init row,
# its SimMIM row with its random-init row, and each ablation with its A2MIM row.
RANDOM_INIT, SIMMIM, A2MIM, ABLATION = "random init", "SimMIM", "A2MIM", "ablation"
ENTRY_POINTS = ("run_pretraining.py", "benchmarks/simmim_pretraining.py")


@dataclass(frozen=True)
class Method:
    """An encoder family, how it is pretrained (`entry_point` None: random init) and A2MIM config overrides.

    Adding a family (e.g. a ConvNeXt preset) is adding its `Method`s: a random-init one, a SimMIM-style and an A2MIM
    one; the runs, the comparisons and the report follow from `family` and `role`.
    """

    name: str
    description: str
    family: str  # "vit" or the preset's family; methods of one family share their initial encoder weights
    role: str  # RANDOM_INIT, SIMMIM, A2MIM or ABLATION
    entry_point: str | None = None  # one of ENTRY_POINTS; None for random init
    preset: str = "vit-micro"
    overrides: dict = field(default_factory=dict)  # A2MIMConfig fields, passed as run_pretraining.py --config_overrides
    every_budget: bool = False  # pretrained at every `Budget.pretrain_epochs` (the headline pair), else the first

    def __post_init__(self):
        if self.role not in (RANDOM_INIT, SIMMIM, A2MIM, ABLATION):
            raise ValueError(f"Method {self.name!r}: role {self.role!r} is not one of {RANDOM_INIT!r}, {SIMMIM!r}, "
                             f"{A2MIM!r}, {ABLATION!r}.")
        if (self.role == RANDOM_INIT) != (self.entry_point is None) or self.entry_point not in (None, *ENTRY_POINTS):
            raise ValueError(f"Method {self.name!r}: a random-init method has no entry_point, every other one has "
                             f"one of {ENTRY_POINTS}.")

    def config(self):
        """The `A2MIMConfig` this method pretrains (`run_pretraining.py --model_preset` with `overrides`): the
        `vit-micro` recipe on `VIT_ENCODER`, or the method's preset. Transformers' SimMIM takes its mask geometry."""
        from modeling_a2mim import A2MIMConfig

        encoder = {"backbone_config": dict(VIT_ENCODER)} if self.family == "vit" else {}
        return A2MIMConfig.from_preset(self.preset, **encoder, **self.overrides)


# SimMIM as the issue defines it on a CNN: the mask token replaces the stem's output (mask_layer 0, stride 4), the
# masked pixels are not mean-filled, L1 on the masked pixels, no frequency loss; the family's recipe otherwise.
CNN_SIMMIM_STYLE = {"mask_layer": 0, "mask_token_mode": "replace", "mask_gamma_init": None, "mean_fill": False,
                    "spatial_loss": "l1", "frequency_loss_weight": 0.0, "frequency_unmask_weight": 0.0}

METHODS = [
    Method("ViT random init", "ViT 96x4, 32 px, no pretraining", "vit", RANDOM_INIT),
    Method("ViT SimMIM", "ViT 96x4, transformers ViTForMaskedImageModeling", "vit", SIMMIM,
           "benchmarks/simmim_pretraining.py", every_budget=True),
    Method("ViT A2MIM", "ViT 96x4, A2MIM (L1 + 0.1 freq, mean fill)", "vit", A2MIM, "run_pretraining.py",
           every_budget=True),
    Method("ResNet random init", "resnet-micro, 64 px, no pretraining", "resnet", RANDOM_INIT, preset="resnet-micro"),
    Method("ResNet SimMIM-style", "resnet-micro, token replaces the stem output, no mean fill, L1, no freq", "resnet",
           SIMMIM, "run_pretraining.py", preset="resnet-micro", overrides=CNN_SIMMIM_STYLE),
    Method("ResNet A2MIM", "resnet-micro, A2MIM (token at stage 3, mean fill, focal L1 + 0.5 freq)", "resnet", A2MIM,
           "run_pretraining.py", preset="resnet-micro"),
    Method("ResNet A2MIM, token at stem", "ablation: mask_layer=0 (stride 4) instead of stage 3", "resnet", ABLATION,
           "run_pretraining.py", preset="resnet-micro", overrides={"mask_layer": 0}),
    # The token replaces the masked stage-3 features, but stages 0-2 see the masked pixels: the leak mean fill closes.
    Method("ResNet A2MIM w/o mean fill", "ablation: mean_fill=False, token replaces masked stage-3 features", "resnet",
           ABLATION, "run_pretraining.py", preset="resnet-micro",
           overrides={"mean_fill": False, "mask_token_mode": "replace", "mask_gamma_init": None}),
    Method("ResNet A2MIM w/o freq loss", "ablation: frequency_loss_weight=0", "resnet", ABLATION, "run_pretraining.py",
           preset="resnet-micro", overrides={"frequency_loss_weight": 0.0}),
    # The convnext-micro preset: 64 px, token after stage 2's downsampling (stride 16), focal L1, no frequency loss
    # (the weight of openmixup's ConvNeXt configs).
    Method("ConvNeXt random init", "convnext-micro, 64 px, no pretraining", "convnext", RANDOM_INIT,
           preset="convnext-micro"),
    Method("ConvNeXt SimMIM-style", "convnext-micro, token replaces the stem output, no mean fill, L1", "convnext",
           SIMMIM, "run_pretraining.py", preset="convnext-micro", overrides=CNN_SIMMIM_STYLE),
    Method("ConvNeXt A2MIM", "convnext-micro, A2MIM (token at stage 2, mean fill, focal L1)", "convnext", A2MIM,
           "run_pretraining.py", preset="convnext-micro"),
]


@dataclass(frozen=True)
class Protocol:
    """An evaluation with `per_class` labels per class (`None`: all 6,000): end-to-end fine-tuning for `epochs`
    (`family_epochs` for the families whose budget differs; every method of a family gets the same), or
    (`probe=True`) `run_linear_probe.py` on frozen features, which reports a linear probe and a k-NN classifier.
    `convergence_epochs`: the fine-tuning budgets `--convergence` tries on the random-init rows, each family up to
    twice its own budget (the shortest curve that can show a longer budget gains nothing)."""

    name: str
    per_class: int | None
    epochs: int = 0
    probe: bool = False
    convergence_epochs: tuple[int, ...] = ()
    convergence_seeds: dict[int, tuple[int, ...]] = field(default_factory=dict)  # costly curve points: their seeds
    family_epochs: dict[str, int] = field(default_factory=dict)  # family -> its budget, where it is not `epochs`
    seeds: tuple[int, ...] | None = None  # the seeds this evaluation runs (None: the budget's)
    families: tuple[str, ...] | None = None  # the families this evaluation runs (None: all)

    def epochs_for(self, family: str) -> int:
        return self.family_epochs.get(family, self.epochs)

    @property
    def columns(self) -> dict[str, str]:
        """Result key -> table column of this protocol."""
        if not self.probe:
            return {"eval_accuracy": self.name}
        return {"linear_probe_accuracy": f"linear probe ({self.name})", "knn_accuracy": f"20-NN ({self.name})"}

    def label(self, family: str) -> str:
        """Names this evaluation of `family` in run keys and folders (a fine-tuning budget is part of it)."""
        return f"{self.name} probe" if self.probe else f"{self.name} {self.epochs_for(family)} ep"


@dataclass(frozen=True)
class Budget:
    """Everything a mode fixes: pretraining budgets (the same for every method), evaluations, test set and seeds."""

    mode: str
    pretrain_images: int  # training images pretraining draws from (a fixed subset when fewer than 60,000)
    pretrain_epochs: tuple[float, ...]  # the first for every pretrained row, all of them for `every_budget` methods
    pretrain_batch_size: int
    protocols: tuple[Protocol, ...]
    test_per_class: int | None  # None: the whole 10k test set
    seeds: tuple[int, ...] = (0, 1, 2)  # pretraining seeds; each encoder is evaluated once, with the same seed
    pretrain_learning_rate: float = 1e-3
    finetune_learning_rate: float = 5e-4
    finetune_batch_size: int = 64
    finetune_min_crop_scale: float = 1.0  # 1.0: no crop, resize + flip (the converged baseline of issue 12)

    def pretrain_steps(self, epochs: float) -> int:
        return round(epochs * self.pretrain_images / self.pretrain_batch_size)


# The fine-tuning budget of full mode comes from `--convergence` (fashion_mnist_convergence.md). Issue 12's evidence
# (run_finetuning.py from a random tiny ViT with 100 labels/class: 74.7 % after 40 epochs at lr 5e-4, wd 0.05, 10 %
# warmup, no crop; 51 % after the old 20 epochs at lr 1e-3 with crops) set the first guess of 40 epochs. The curve
# showed the CNNs converged there (80 epochs add nothing) but not the ViT: 71.8 % at 40, 74.1 % at 80, 75.4 % at 160,
# 76.7 % at 320, each step beyond the seed spread (batch 16 instead of 64, seed 0, reached 72.9 % at 40 and 75.2 %
# at 80 epochs: fewer epochs, no plateau either). So 100 labels/class fine-tune the CNN rows 40 epochs
# and the ViT rows 320 (each family's methods alike); the ViT curve checks 640 with seed 0 only (about 1 h a run; a
# point of one seed is judged against the budget's spread): 77.5 %, +0.8 over 320, within the spread.
# What 2 cores afford decides the rest. No all-labels column: its old single epoch was not converged, and a converged
# one is out of reach (5 epochs over 60,000 images are already 22 min per ViT run, and the ViT needs 320 epochs of
# 1,000 images to converge, the same number of image passes), while a column whose baseline has not converged measures
# optimization, not pretraining. The ablations are the CNN's (where A2MIM's mask stage and mean fill matter); the
# ViT's would cost 3 x 24 min a row. Pretraining takes 1 and 3 epochs (the ViT pretrains at ~170 images/s): the
# longer one is about the previous protocol's 1,170 steps, the ratio is the 3x of issue 12's example (2 and 6).
BUDGETS = {
    "quick": Budget(
        mode="quick",
        pretrain_images=60_000,
        pretrain_epochs=(0.25,),  # 117 steps
        pretrain_batch_size=128,
        protocols=(
            Protocol("100 labels/class", 100, epochs=5, convergence_epochs=(2, 5)),
            Protocol("300/class", 300, probe=True),
        ),
        test_per_class=100,
        # One seed: 33 runs, 14 min measured on 2 busy cores (2 seeds were ~26 min, mostly subprocess start-up).
        seeds=(0,),
        finetune_batch_size=32,
    ),
    "full": Budget(
        mode="full",
        pretrain_images=60_000,
        pretrain_epochs=(1, 3),  # 469 and 1,406 steps
        pretrain_batch_size=128,
        protocols=(
            Protocol("100 labels/class", 100, epochs=40, convergence_epochs=(10, 20, 40, 80, 160, 320, 640),
                     convergence_seeds={640: (0,)}, family_epochs={"vit": 320}),
            Protocol("100/class", 100, probe=True),
        ),
        test_per_class=None,
    ),
}


@dataclass(frozen=True)
class Row:
    """One line of the table: `method` pretrained for `epochs` (None: random init)."""

    name: str
    method: Method
    epochs: float | None


def table_rows(methods: list[Method], budget: Budget) -> list[Row]:
    """The rows of `methods` under `budget`, family by family: random init and every method at the first pretraining
    budget (named as the method), then the `every_budget` methods at the longer budgets (`"ViT A2MIM (6 ep)"`)."""
    rows = []
    for family in dict.fromkeys(m.family for m in methods):
        members = [m for m in methods if m.family == family]
        for index, epochs in enumerate(budget.pretrain_epochs):
            for method in members:
                if method.entry_point is None:
                    rows += [Row(method.name, method, None)] if index == 0 else []
                elif index == 0 or method.every_budget:
                    rows.append(Row(method.name if index == 0 else f"{method.name} ({epochs:g} ep)", method, epochs))
    return rows


def comparison_pairs(rows: list[Row]) -> list[tuple[str, str]]:
    """(candidate, reference) row names the report gives a verdict on, per family and pretraining budget: A2MIM vs
    SimMIM, A2MIM vs random init, SimMIM vs random init, and every ablation vs A2MIM."""
    pairs = []
    for family in dict.fromkeys(r.method.family for r in rows):
        members = [r for r in rows if r.method.family == family]
        random_init = next((r.name for r in members if r.epochs is None), None)
        for epochs in dict.fromkeys(r.epochs for r in members if r.epochs is not None):
            at = [r for r in members if r.epochs == epochs]
            role = {r.method.role: r.name for r in at if r.method.role != ABLATION}
            candidates = [(role.get(A2MIM), role.get(SIMMIM)), (role.get(A2MIM), random_init),
                          (role.get(SIMMIM), random_init)]
            candidates += [(r.name, role.get(A2MIM)) for r in at if r.method.role == ABLATION]
            pairs += [pair for pair in candidates if None not in pair]
    return pairs


def budget_pairs(rows: list[Row]) -> list[tuple[float, str, str]]:
    """`(epochs, A2MIM row, SimMIM row)` for every budget at which a family pretrains both (the budget table)."""
    by_budget = {}
    for row in rows:
        if row.method.role in (A2MIM, SIMMIM) and row.method.every_budget:
            by_budget.setdefault((row.method.family, row.epochs), {})[row.method.role] = row.name
    return [(epochs, names[A2MIM], names[SIMMIM]) for (_, epochs), names in by_budget.items()
            if A2MIM in names and SIMMIM in names]


# The scripts the runs call; the code of a run is its script and the repository modules that script imports.
CODE_SCRIPTS = ("run_pretraining.py", "run_finetuning.py", "run_linear_probe.py", "benchmarks/simmim_pretraining.py")


@functools.cache
def script_files(script: str) -> tuple[str, ...]:
    """The repository files that `script` (repository-relative) executes: itself and every repository module it imports,
    transitively, also inside functions, with the `__init__.py` of each package on the way; `()` for what is not a
    repository file (`python -c ...`)."""
    found, todo = set(), [REPO / script]
    while todo:
        path = todo.pop()
        if path in found or not path.is_file():
            continue
        found.add(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                todo += [file for alias in node.names for file in module_files(REPO, alias.name)]
            elif isinstance(node, ast.ImportFrom):
                base = REPO if not node.level else path.parents[node.level - 1]
                module = node.module or ""
                todo += module_files(base, module)
                todo += [file for alias in node.names for file in module_files(base, f"{module}.{alias.name}")]
    return tuple(sorted(str(path.relative_to(REPO)) for path in found))


def module_files(base: Path, module: str) -> list[Path]:
    """The files that importing `module` (dotted, relative to the folder `base`) executes below `base`: each package's
    `__init__.py` on the way and the module itself; the files need not exist (the caller skips missing ones)."""
    parts = [part for part in module.split(".") if part]
    folders = [base.joinpath(*parts[:n]) for n in range(1, len(parts) + 1)]
    return [folder / "__init__.py" for folder in folders] + ([folders[-1].with_suffix(".py")] if parts else [])


@functools.cache
def code_fingerprint(scripts: tuple[str, ...] = CODE_SCRIPTS) -> str:
    """A hash of the code that `scripts` execute (`script_files`) and of the torch and transformers versions: a cached
    run is reused only when it was made by the same code, so that a table never mixes runs of different versions, and
    an edit that a script does not import (the detection code, for a segmentation run) keeps its runs."""
    import torch
    import transformers

    digest = hashlib.sha256(f"torch {torch.__version__} transformers {transformers.__version__}".encode())
    for name in sorted({file for script in scripts for file in script_files(script)}):
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Ledger:
    """Finished runs' records (`benchmark_run.json`, no checkpoints or logs) kept outside the cache, under `root`, at
    their cache folders' places below `cache`: committed beside the reports, so that a fresh clone (whose cache is
    empty) reuses the runs of an earlier machine and a benchmark longer than one machine's session adds up."""

    root: Path
    cache: Path

    def place(self, folder: Path) -> Path:
        """Where the ledger keeps what the cache keeps in `folder`."""
        return self.root / folder.relative_to(self.cache)


@dataclass
class Run:
    """One subprocess: its command, its output folder, and the result parsed from that folder when it finishes."""

    key: str  # unique, readable; also the folder name under the cache
    command: list[str]
    output_dir: Path
    read_result: object  # callable(output_dir) -> dict
    source: "Run | None" = None  # the run whose output (a pretraining checkpoint) this one starts from
    record: dict = field(default_factory=dict)  # what the report files the result under (method, seed, epochs)
    code: str | None = None  # the fingerprint of the code the command runs; None: `code_fingerprint` of its script
    ledger: Ledger | None = None  # where finished records are also kept (and found when the cache lacks them)
    needs_outputs: bool = False  # reuse only a run finished in this cache: a run to come needs its output files

    def __post_init__(self):
        if self.code is None:
            self.code = code_fingerprint((relative(self.command[1]),))

    @property
    def identity(self) -> str:
        """What a finished run must have been made by to be reused (its record's `code`): this run's code, and, for a
        run that starts from another's output, that run's command and identity too, so that a new pretraining (other
        command or code) starts new fine-tuning runs and the records of the earlier ones stay."""
        if self.source is None:
            return self.code
        made_from = json.dumps([self.code, portable(self.source.command), self.source.identity])
        return hashlib.sha256(made_from.encode()).hexdigest()[:16]

    def _recorded(self) -> dict | None:
        """`benchmark_run.json` of the output folder: written when the run starts (`key`, `command`, `code`,
        `machine`) and completed with its result and `seconds` when it finishes."""
        path = self.output_dir / "benchmark_run.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def _made_here(self, record: dict) -> bool:
        return record["command"] == portable(self.command) and record.get("code") == self.identity

    def _kept(self) -> Path | None:
        """The ledger's record of this run: one file per command and identity, so that the records of other commands
        or code (the provenance of earlier reports) stay beside it."""
        if self.ledger is None:
            return None
        made_by = hashlib.sha256(json.dumps([portable(self.command), self.identity]).encode()).hexdigest()[:16]
        return self.ledger.place(self.output_dir) / f"benchmark_run-{made_by}.json"

    def finished_here(self) -> dict | None:
        """The result of an earlier run of exactly this command by the same code, if it finished in this cache (its
        output files are here); it is then kept in the ledger too."""
        record = self._recorded()
        if record is None or "seconds" not in record or not self._made_here(record):
            return None
        if (kept := self._kept()) is not None and (not kept.is_file() or json.loads(kept.read_text()) != record):
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(json.dumps(record, indent=2) + "\n")
        return record

    def cached_result(self) -> dict | None:
        """`finished_here`, else the ledger's record of exactly this command by the same code (a run finished on
        another machine: its result, but no output files here)."""
        if (record := self.finished_here()) is not None:
            return record
        kept = self._kept()
        record = json.loads(kept.read_text()) if kept is not None and kept.is_file() else None
        return record if record is not None and self._made_here(record) else None

    def execute(self, threads: int) -> dict:
        """Run (or reuse) the command with `threads` CPU threads; raise `RuntimeError` with the log tail on failure.

        An output folder left by another command or other code (finished or not) is emptied first: the scripts
        would otherwise take its finished run for this one's and train nothing. A run the ledger holds that runs again
        for its output files (`needs_outputs`) reproduces that run (same command, same code): the ledger keeps the
        runs that used its earlier output."""
        cached = self.finished_here() if self.needs_outputs else self.cached_result()
        if cached is not None:
            print(f"[reuse] {self.key}", flush=True)
            return cached
        if (recorded := self._recorded()) is not None and not self._made_here(recorded):
            shutil.rmtree(self.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        record = {"key": self.key, "command": portable(self.command), "code": self.identity,
                  "machine": machine_description()}
        (self.output_dir / "benchmark_run.json").write_text(json.dumps(record, indent=2) + "\n")
        environment = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        log = self.output_dir / "log.txt"
        print(f"[start] {self.key}", flush=True)
        start = time.perf_counter()
        with log.open("w") as handle:
            handle.write(shlex.join(self.command) + "\n\n")
            handle.flush()
            process = subprocess.run(self.command, cwd=REPO, env=environment, stdout=handle, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-30:])
            raise RuntimeError(f"{self.key} failed (exit {process.returncode}); log {log}:\n{tail}")
        record = {**record, "seconds": round(seconds, 1), **self.read_result(self.output_dir)}
        (self.output_dir / "benchmark_run.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"[done {seconds:5.0f}s] {self.key}", flush=True)
        return self.finished_here()  # also kept in the ledger


def run_all(runs: list[Run], jobs: int, threads: int, after: dict[str, str]) -> list[dict]:
    """Execute `runs` on `jobs` parallel subprocesses of `threads` threads each; results in the order of `runs`.

    `after[key]` names a run that must finish before run `key` starts; it must come earlier in `runs` (runs start in
    list order). Every run that can finish does; then a `RuntimeError` lists the failures, if any.
    """
    futures = {}

    def execute(run: Run) -> dict:
        if run.key in after:
            futures[after[run.key]].result()
        return run.execute(threads)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for run in runs:
            futures[run.key] = pool.submit(execute, run)
    failures = [str(future.exception()) for future in futures.values() if future.exception()]
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(runs)} runs failed:\n" + "\n\n".join(failures))
    return [futures[run.key].result() for run in runs]


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def encoder_dir(family: str, seed: int, run_dir: Path) -> Path:
    """The untrained encoder every method of `family` starts from at pretraining seed `seed` (its random-init row)."""
    return seed_dir(seed, run_dir) / "init" / family / "encoder"


def write_initial_encoders(methods: list[Method], seeds, run_dir: Path) -> None:
    """For each family of `methods` and each seed, an `A2MIMForMaskedImageModeling` of the family's config built with
    torch seed `seed` and exported with `save_encoder` (a stock ViT/ResNet checkpoint) to `encoder_dir`; existing ones
    are kept. So all methods of a family start from the same encoder weights at a given seed."""
    import torch

    from modeling_a2mim import A2MIMForMaskedImageModeling

    first_of_family = {m.family: m for m in reversed(methods)}
    for family, method in first_of_family.items():
        config = dataclasses.replace(method, overrides={}).config()  # the encoder alone, whatever the method
        for seed in seeds:
            path = encoder_dir(family, seed, run_dir)
            if path.is_dir():
                continue
            torch.manual_seed(seed)
            temporary = path.with_name(path.name + ".tmp")
            A2MIMForMaskedImageModeling(config).save_encoder(temporary)
            temporary.rename(path)  # complete or absent, never half written


def seed_dir(seed: int, run_dir: Path) -> Path:
    return run_dir / f"seed{seed}"


def pretraining_run(row: Row, seed: int, budget: Budget, data: dict[str, Path], run_dir: Path) -> Run:
    """The unlabelled pretraining of `row` on `data["pretrain"]` with pretraining seed `seed`, from the family's
    initial encoder at that seed; `budget.pretrain_steps(row.epochs)` steps."""
    method = row.method
    output_dir = seed_dir(seed, run_dir) / "pretrain" / slug(row.name)
    encoder = encoder_dir(method.family, seed, run_dir)
    common = [
        "--model_name_or_path", str(encoder),
        "--data_files", str(data["pretrain"]),
        "--output_dir", str(output_dir / "checkpoint"),
        "--max_steps", str(budget.pretrain_steps(row.epochs)),
        "--per_device_train_batch_size", str(budget.pretrain_batch_size),
        "--learning_rate", str(budget.pretrain_learning_rate),
        "--weight_decay", "0.05",
        "--warmup_steps", "0.1",
        "--lr_scheduler_type", "cosine",
        "--max_grad_norm", "5.0",
        "--logging_steps", "10",
        "--save_strategy", "no",
        "--report_to", "none",
        "--dataloader_num_workers", "0",
        "--seed", str(seed),
        "--use_cpu",
    ]
    command = [sys.executable, method.entry_point, *common]
    if method.entry_point == "benchmarks/simmim_pretraining.py":
        command += ["--mask_patch_size", str(method.config().mask_patch_size), "--mask_ratio", "0.6"]
    else:
        command += ["--model_preset", method.preset]
        if method.overrides:
            overrides = ",".join(f"{key}={json.dumps(value)}" for key, value in method.overrides.items())
            command += ["--config_overrides", overrides]
    return Run(f"pretrain {row.name} seed {seed}", command, output_dir, read_result=read_pretraining_result,
               record={"method": row.name, "seed": seed})


def read_pretraining_result(output_dir: Path) -> dict:
    metrics = json.loads((output_dir / "checkpoint" / "all_results.json").read_text())
    return {"checkpoint": relative(output_dir / "checkpoint"), "train_loss": metrics.get("train_loss")}


def evaluation_dir(row: Row, seed: int, run_dir: Path) -> Path:
    return seed_dir(seed, run_dir) / "evaluate" / slug(row.name)


def evaluation_run(row: Row, checkpoint: Path, protocol: Protocol, seed: int, budget: Budget,
                   data: dict[str, Path], run_dir: Path) -> Run:
    """Fine-tune or probe `checkpoint` under `protocol` with `seed` (which also draws the label subset); the result
    maps each of `protocol.columns` to its test top-1."""
    epochs, label = protocol.epochs_for(row.method.family), protocol.label(row.method.family)
    output_dir = evaluation_dir(row, seed, run_dir) / slug(label)
    common = [
        "--model_name_or_path", str(checkpoint),
        "--dataset_name", str(data["labelled"]),
        "--output_dir", str(output_dir / "result"),
        "--seed", str(seed),
        "--use_cpu",
    ]
    if protocol.per_class is not None:
        common += ["--train_samples_per_class", str(protocol.per_class)]
    if protocol.probe:
        command = [sys.executable, "run_linear_probe.py", *common, "--batch_size", "256", "--pooling", "mean"]
    else:
        command = [
            sys.executable, "run_finetuning.py", *common,
            "--num_train_epochs", str(epochs),
            "--per_device_train_batch_size", str(budget.finetune_batch_size),
            "--per_device_eval_batch_size", "256",
            "--learning_rate", str(budget.finetune_learning_rate),
            "--weight_decay", "0.05",
            "--warmup_steps", "0.1",
            "--min_crop_scale", str(budget.finetune_min_crop_scale),
            "--do_train", "--do_eval",
            "--eval_strategy", "no",
            "--save_strategy", "no",
            "--report_to", "none",
            "--dataloader_num_workers", "0",
        ]

    def read_result(output_dir: Path) -> dict:
        metrics = json.loads((output_dir / "result" / "all_results.json").read_text())
        return {"accuracies": {column: metrics[key] for key, column in protocol.columns.items()}}

    record = {"method": row.name, "seed": seed, **({} if protocol.probe else {"epochs": epochs})}
    return Run(f"{label} {row.name} seed {seed}", command, output_dir, read_result=read_result,
               record=record)


@dataclass
class Plan:
    """The runs of one benchmark invocation in start order (`runs`) and one evaluation per protocol whose command the
    report prints (`examples`)."""

    runs: list[Run]
    examples: list[Run]

    @property
    def after(self) -> dict[str, str]:
        """Which run waits for which (`run_all`'s `after`): each run that starts from another's output, its source."""
        return {run.key: run.source.key for run in self.runs if run.source is not None}

    @property
    def pretraining(self) -> list[Run]:
        return [run for run in self.runs if run.key.startswith("pretrain ")]

    @property
    def evaluations(self) -> list[Run]:
        return [run for run in self.runs if not run.key.startswith("pretrain ")]


def priority(row: Row, budget: Budget) -> tuple[int, bool]:
    """When the evaluations of `row` start: the main rows (0), then the ablations (1), then the longer pretraining
    budgets (2); within those, the CNN families before the ViT, whose runs cost about 3x theirs."""
    stage = 2 if row.epochs not in (None, budget.pretrain_epochs[0]) else int(row.method.role == ABLATION)
    return stage, row.method.family == "vit"


def plan_runs(rows: list[Row], protocols, budget: Budget, data: dict[str, Path], run_dir: Path) -> Plan:
    """Every (row, seed) pretraining run and every (protocol, row, seed) evaluation, group by group in `priority`
    order, so that an interrupted benchmark has whole comparisons: a group's pretraining runs not started yet, then
    its evaluations (random init first, the others in the order their pretraining started)."""
    groups: dict[tuple[int, bool], list[tuple[Protocol, Row]]] = {}
    for protocol in protocols:
        for row in rows:
            if protocol.families is None or row.method.family in protocol.families:
                groups.setdefault(priority(row, budget), []).append((protocol, row))
    pretraining, runs, examples = {}, [], {}
    for group in sorted(groups):
        evaluations = []
        for protocol, row in groups[group]:
            for seed in protocol.seeds or budget.seeds:
                if row.epochs is None:
                    checkpoint = encoder_dir(row.method.family, seed, run_dir)
                else:
                    if (row.name, seed) not in pretraining:
                        pretraining[row.name, seed] = pretraining_run(row, seed, budget, data, run_dir)
                        runs.append(pretraining[row.name, seed])
                    checkpoint = pretraining[row.name, seed].output_dir / "checkpoint"
                run = evaluation_run(row, checkpoint, protocol, seed, budget, data, run_dir)
                evaluations.append(run)
                examples.setdefault(protocol.name, run)
                if row.epochs is not None:
                    run.source = pretraining[row.name, seed]
        runs += sorted(evaluations, key=lambda run: run.source is not None)
    return Plan(runs, list(examples.values()))


def convergence_protocols(budget: Budget, families) -> list[Protocol]:
    """Each fine-tuning protocol at each of its `convergence_epochs`, for the `families` whose budget it is at most
    half of, with every seed (at a family's budget: the benchmark's own random-init runs) except at the costly points
    of the protocol's `convergence_seeds`."""
    curves = []
    for protocol in budget.protocols:
        for epochs in () if protocol.probe else protocol.convergence_epochs:
            by_seeds: dict[tuple | None, list[str]] = {}
            for family in families:
                if epochs <= 2 * protocol.epochs_for(family):
                    at_budget = epochs == protocol.epochs_for(family)
                    by_seeds.setdefault(None if at_budget else protocol.convergence_seeds.get(epochs),
                                        []).append(family)
            curves += [dataclasses.replace(protocol, epochs=epochs, family_epochs={}, seeds=seeds,
                                           families=tuple(members)) for seeds, members in by_seeds.items()]
    return curves


def execute(plan: Plan, args) -> tuple[dict[str, dict], list[str], float]:
    """`({run key: result} of the finished runs, keys of the unfinished runs, run seconds summed)`.

    A run that only the ledger holds left no output files on this machine: when a run that needs them (`plan.after`)
    has to run, it runs again (`Run.needs_outputs`)."""
    runs = plan.runs
    if not args.cached_only:
        by_key = {run.key: run for run in runs}
        for key, before in plan.after.items():
            if by_key[key].cached_result() is None:
                by_key[before].needs_outputs = True
    results = [run.cached_result() for run in runs] if args.cached_only else run_all(
        runs, args.jobs, args.threads, plan.after)
    missing = [run.key for run, result in zip(runs, results) if result is None]
    finished = {run.key: result for run, result in zip(runs, results) if result is not None}
    return finished, missing, sum(result["seconds"] for result in finished.values())


def evaluation_records(runs: list[Run], results: dict[str, dict]) -> list[dict]:
    """One record per (finished run, result column): `{**run.record, "protocol", "accuracy", "seconds"}`."""
    return [{**run.record, "protocol": column, "accuracy": accuracy, "seconds": results[run.key]["seconds"]}
            for run in runs if run.key in results
            for column, accuracy in results[run.key]["accuracies"].items()]


def machine_description() -> str:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_model()}, {cores} CPU cores, torch {torch.__version__}, {platform.system()} {platform.release()}"


def relative(path) -> str:
    """`path` (or any text naming paths) with this checkout's location removed: repository-relative paths."""
    return str(path).replace(str(REPO) + os.sep, "")


def portable(command: list[str]) -> list[str]:
    """A command as a user types it from the repository root, and as the runs and reports record it: `python`,
    then repository-relative paths instead of this machine's interpreter and checkout."""
    return ["python", *map(relative, command[1:])]


def display(command: list[str]) -> str:
    """A command line as a user types it from the repository root."""
    return shlex.join(portable(command))


def shown_command(argv: list[str], script: str = "benchmarks/fashion_mnist.py") -> str:
    """The benchmark's command line as the report prints it: without `--note TEXT` and `--cached_only`."""
    shown = [a for i, a in enumerate(argv) if a != "--note" and (i == 0 or argv[i - 1] != "--note")]
    return shlex.join(["python", script, *(relative(a) for a in shown if a != "--cached_only")])


def report_header(title: str, run_seconds: float, jobs: int, argv: list[str], note: str | None,
                  script: str = "benchmarks/fashion_mnist.py", code: str | None = None,
                  machines: dict[str, int] | None = None) -> tuple[list, dict]:
    """`(markdown lines, json fields)` every report starts with: when, where, how long, the command of `script` and
    the code fingerprint (`code`, default `code_fingerprint()`); `machines` (`{machine: finished runs}`) names where
    the runs ran when that is not only this machine (runs reused from a `Ledger`)."""
    machine, date, command = machine_description(), utc_timestamp(), shown_command(argv, script)
    code = code or code_fingerprint()
    where = f"Run {date} on {machine}"
    if machines and set(machines) != {machine}:
        where = (f"Reported {date} on {machine}, from runs made on " +
                 "; ".join(f"{name} ({count} runs)" for name, count in machines.items()))
    lines = [
        f"# {title}",
        "",
        f"{where}; the runs took {run_seconds / 60:.0f} min summed over runs ({jobs} in "
        f"parallel). Command: `{command}` (code fingerprint `{code}`)" + (f"\n\n{note}" if note else ""),
        "",
    ]
    fields = {"date": date, "machine": machine, "command": command, "code_fingerprint": code,
              "run_seconds_summed": round(run_seconds, 1), **({"run_machines": machines} if machines else {})}
    return lines, fields


def missing_lines(missing: list[str], planned: int) -> list[str]:
    """The report's warning when `missing` of the `planned` runs have not finished, with their keys folded away."""
    if not missing:
        return []
    return [f"**Incomplete: {len(missing)} of {planned} runs have not finished; their cells are left out or have "
            "fewer seeds.**", "", f"<details><summary>The {len(missing)} unfinished runs</summary>", "",
            "; ".join(missing) + ".", "", "</details>", ""]


def seeds_phrase(seeds: int) -> str:
    """How a report's table aggregates `seeds` pretraining seeds."""
    return (f"mean ± std over pretraining seeds (n = number of seeds where fewer than {seeds} finished)" if seeds > 1
            else "one pretraining seed (no spread, so no verdicts)")


def verdict_lines(comparisons: list[dict]) -> list[str]:
    """The report's verdicts: how they are decided, one sentence per pair, the comparison table."""
    return ["Verdicts over pretraining seeds: `better`/`worse` when the difference of the means exceeds twice its "
            "standard error, else `no clear difference`; \"seeds where better\" pairs the runs of each seed.", "",
            *headlines(comparisons), "", markdown_comparisons(comparisons), ""]


def commands_lines(pretraining: list[dict], seed: int, examples: list[Run]) -> list[str]:
    """The report's "Commands" section: the pretraining commands of `seed` and the `examples`' commands."""
    return ["## Commands", "",
            "Every run is a subprocess from the repository root (`benchmarks/cache/` holds data, checkpoints, logs):",
            "", "```bash", *[display(r["command"]) for r in pretraining if r["seed"] == seed],
            *[display(run.command) for run in examples], "```", ""]


def finetuning_line(budget: Budget) -> str:
    """The report line that states the fine-tuning recipe and each protocol's budget."""
    crop = ("resize + flip, no crop" if budget.finetune_min_crop_scale == 1.0 else
            f"RandomResizedCrop (scale {budget.finetune_min_crop_scale}-1) + flip")
    return (f"- Fine-tuning (`run_finetuning.py`, no `--recipe`: AdamW + cosine): end to end, lr "
            f"{budget.finetune_learning_rate}, wd 0.05, 10% warmup, batch {budget.finetune_batch_size}, {crop}, the "
            "same for every method of a family; "
            + "; ".join(f"{p.name}: {p.epochs} epochs"
                        + "".join(f" ({family} rows: {epochs})" for family, epochs in p.family_epochs.items())
                        for p in budget.protocols if not p.probe)
            + ". Labelled subsets are drawn class-balanced with the fine-tuning seed.")


def chosen_epochs(budget: Budget, rows: list[Row]) -> dict[tuple[str, str], int]:
    """`{(random-init row, protocol): the fine-tuning budget}`: where each convergence curve is judged."""
    return {(row.name, protocol.name): protocol.epochs_for(row.method.family)
            for row in rows if row.epochs is None for protocol in budget.protocols if not protocol.probe}


def convergence_summary(results_dir: Path, chosen: dict[tuple[str, str], int]) -> list[str]:
    """The main report's lines about the random-init convergence curve: its verdicts, if `--convergence` has written
    its json to `results_dir`, else how to produce it."""
    path = results_dir / "fashion_mnist_convergence.json"
    if not path.is_file():
        return ["The convergence curve of the random-init rows has not been run: "
                "`python benchmarks/fashion_mnist.py --convergence` (same mode flags) draws it."]
    report = json.loads(path.read_text())
    verdicts = convergence_verdicts(convergence_curves(report["runs"]), chosen)
    return [f"Random-init fine-tuning curve (`fashion_mnist_convergence.md`, code `{report['code_fingerprint']}`):",
            "", *map(convergence_sentence, verdicts)]


def write_report(budget: Budget, rows: list[Row], records: list[dict], pretraining: list[dict],
                 example_runs: list[Run], missing: list[str], planned: int, run_seconds: float, jobs: int,
                 argv: list[str], note: str | None, results_dir: Path) -> None:
    protocols = [column for p in budget.protocols for column in p.columns.values()]
    names = [r.name for r in rows]
    summaries = summarize(records)
    comparisons = compare(records, comparison_pairs(rows), protocols)
    headline_budgets = budget_pairs(rows)
    chosen = chosen_epochs(budget, rows)
    header, fields = report_header(f"Fashion-MNIST: does A2MIM pretraining pay off? ({budget.mode} mode)",
                                   run_seconds, jobs, argv, note)
    pool = "all 60,000" if budget.pretrain_images == 60_000 else f"a fixed subset of {budget.pretrain_images:,} of the"
    test_set = ("all 10,000 test images" if budget.test_per_class is None else
                f"{10 * budget.test_per_class:,} test images ({budget.test_per_class} per class, fixed)")
    epochs = budget.pretrain_epochs
    budget_lines = [
        f"- Pretraining (no labels): {epochs[0]:g} epoch(s) = {budget.pretrain_steps(epochs[0])} steps x batch "
        f"{budget.pretrain_batch_size} for every pretrained row"
        + "".join(f"; {e:g} epochs = {budget.pretrain_steps(e)} steps for the rows marked ({e:g} ep)" for e in epochs[1:])
        + f", drawn from {pool} training images; AdamW lr {budget.pretrain_learning_rate}, wd 0.05, 10% warmup, "
        "cosine, grad clip 5; block mask 8 px at 32 px (ViT) / 16 px at 64 px (ResNet, ConvNeXt), ratio 0.6; all "
        "methods of a family start from the same random encoder weights at a given seed (the random-init rows).",
        finetuning_line(budget),
        "- Probes (`run_linear_probe.py --pooling mean`): frozen encoder, features = the mean of the last layer's "
        "patch tokens (ViT, after the final norm; the cls token, which neither MIM method trains, is left out) or "
        "global average pooling (ResNet, ConvNeXt); logistic regression (C=1, standardized features) and cosine "
        "20-NN; " + "; ".join(p.name for p in budget.protocols if p.probe) + ".",
        f"- Seeds: pretraining seeds {', '.join(map(str, budget.seeds))}. Seed s fixes the initial encoder weights "
        "(random-init rows: that encoder), the pretraining run, and the one fine-tuning/probe run of its encoder "
        "(same seed, so also the labelled subset): mean ± sample std over pretraining seeds.",
        f"- Test set: {test_set}.",
        "- Images: Fashion-MNIST 28x28 grayscale, converted to 3 channels and resized to 32 px (ViT, patch 4) or "
        "64 px (ResNet, ConvNeXt); ImageNet normalization.",
    ]
    pretraining_summary = {}
    for r in pretraining:
        pretraining_summary.setdefault(r["method"], []).append(r)
    pretraining_lines = [f"| {name} | {len(runs)} | {sum(r['seconds'] for r in runs) / len(runs):.0f} | "
                         f"{sum(r['train_loss'] for r in runs) / len(runs):.4f} |"
                         for name, runs in pretraining_summary.items()]
    markdown = "\n".join([
        *header,
        f"Test top-1 (%), {seeds_phrase(len(budget.seeds))}; best of each column in bold; — : no finished run.",
        "",
        *missing_lines(missing, planned),
        markdown_table(summaries, names, protocols, {r.name: r.method.description for r in rows}, len(budget.seeds)),
        "",
        *verdict_lines(comparisons),
        "## Pretraining budget",
        "",
        markdown_budget_table(summaries, comparisons, headline_budgets, protocols),
        "",
        "## Converged baseline",
        "",
        *convergence_summary(results_dir, chosen),
        "",
        "## Budget",
        "",
        *budget_lines,
        "",
        "| Pretraining | seeds | mean seconds | mean train loss (own objective) |",
        "|---|---:|---:|---:|",
        *pretraining_lines,
        "",
        *commands_lines(pretraining, budget.seeds[0], example_runs),
        f"(The pretraining commands of seed {budget.seeds[0]} and one fine-tuning and one probe command per protocol "
        "are shown; the others differ only in `--seed`, `--model_name_or_path` and the output folder.)",
        "",
    ])
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "fashion_mnist.md").write_text(markdown)
    plot(summaries, names, protocols, results_dir / "fashion_mnist.png",
         f"Fashion-MNIST, {budget.mode} mode, {len(budget.seeds)} pretraining seeds", headline_budgets)
    write_json(results_dir / "fashion_mnist.json", {
        **fields,
        "budget": asdict(budget),
        "methods": [asdict(m) for m in {r.method.name: r.method for r in rows}.values()],
        "rows": [{"name": r.name, "method": r.method.name, "pretrain_epochs": r.epochs} for r in rows],
        "summary": {m: {p: asdict(s) for p, s in by_protocol.items()} for m, by_protocol in summaries.items()},
        "comparisons": comparisons,
        "budget_pairs": headline_budgets,
        "pretraining": pretraining,
        "missing_runs": missing,
        "runs": records,
    })


def write_convergence_report(budget: Budget, chosen: dict[tuple[str, str], int], records: list[dict],
                             example_runs: list[Run], missing: list[str], planned: int, run_seconds: float, jobs: int,
                             argv: list[str], note: str | None, results_dir: Path) -> None:
    curves = convergence_curves(records)
    verdicts = convergence_verdicts(curves, chosen)
    header, fields = report_header(f"Fashion-MNIST: is the random-init fine-tuning converged? ({budget.mode} mode)",
                                   run_seconds, jobs, argv, note)
    markdown = "\n".join([
        *header,
        "Test top-1 (%) of the random-init rows against the fine-tuning budget, "
        + (f"mean ± std over seeds {', '.join(map(str, budget.seeds))} (each seed: its own initial encoder and "
           "labelled subset)" if len(budget.seeds) > 1 else f"seed {budget.seeds[0]} only (no spread, so no verdicts)")
        + "; the "
        "benchmark's budget in bold. A budget is converged when no longer one is better beyond twice the standard "
        "error of the difference; each family's curve goes up to twice its budget."
        + "".join(f" The {p.name} curve runs {epochs} epochs with seed {', '.join(map(str, seeds))} only (a point "
                  "of one seed borrows the spread of the budget's point)."
                  for p in budget.protocols for epochs, seeds in p.convergence_seeds.items()),
        "",
        *missing_lines(missing, planned),
        markdown_convergence(curves, chosen, len(budget.seeds)),
        "",
        *map(convergence_sentence, verdicts),
        "",
        "## Budget",
        "",
        finetuning_line(budget),
        "",
        "```bash",
        *[display(run.command) for run in example_runs],
        "```",
        "",
    ])
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "fashion_mnist_convergence.md").write_text(markdown)
    plot_convergence(curves, chosen, results_dir / "fashion_mnist_convergence.png",
                     f"Fashion-MNIST, {budget.mode} mode: random-init fine-tuning vs epochs")
    write_json(results_dir / "fashion_mnist_convergence.json", {
        **fields, "budget": asdict(budget), "verdicts": verdicts, "missing_runs": missing, "runs": records,
        "chosen_epochs": [{"method": method, "protocol": protocol, "epochs": epochs}
                          for (method, protocol), epochs in chosen.items()],
    })


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="The smoke budget instead of the full one.")
    parser.add_argument("--convergence", action="store_true",
                        help="Only the random-init rows, fine-tuned at each protocol's convergence_epochs: writes "
                        "fashion_mnist_convergence.{json,md,png}, which the main report then quotes.")
    parser.add_argument("--methods", nargs="+", choices=[slug(m.name) for m in METHODS], metavar="NAME",
                        help=f"Only these methods (default: all of {', '.join(slug(m.name) for m in METHODS)}).")
    add_run_arguments(parser)
    return parser.parse_args(argv)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of how a benchmark runs and reports: --jobs, --threads, --cached_only, --note, --results_dir,
    --cache_dir."""
    parser.add_argument("--jobs", type=int, default=2, help="Runs in parallel (default 2, one per core).")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run (default 1).")
    parser.add_argument("--cached_only", action="store_true",
                        help="Start no run: report the finished ones and list the missing ones in the md.")
    parser.add_argument("--note", help="A sentence for the md, e.g. about other load on the machine during the run.")
    parser.add_argument("--results_dir", type=Path,
                        help="Where the reports go (default: benchmarks/results; quick mode: "
                        "benchmarks/results/quick).")
    parser.add_argument("--cache_dir", type=Path, default=CACHE_DIR)


def nothing_finished(missing: list[str], plan: Plan, report: Path, argv: list[str],
                     script: str = "benchmarks/fashion_mnist.py") -> bool:
    """True (after saying so) when no run of `plan` has finished and `report` exists: a report of nothing would
    overwrite the results it holds, as `--cached_only` in a fresh clone, whose cache is empty, would."""
    if len(missing) < len(plan.runs) or not report.is_file():
        return False
    command = " ".join([f"python {script}", *(a for a in argv if a != "--cached_only")])
    print(f"None of the {len(plan.runs)} runs has finished in this cache, so {report} and its .json/.png are left "
          f"as they are (a report of no runs would replace them). Start the runs with `{command}`, or pass "
          "--results_dir to write the empty report elsewhere.")
    return True


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.results_dir = args.results_dir or (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR)
    budget = BUDGETS["quick" if args.quick else "full"]
    methods = [m for m in METHODS if args.methods is None or slug(m.name) in args.methods]
    rows = table_rows(methods, budget)
    if args.convergence and all(r.epochs is not None for r in rows):
        raise SystemExit("fashion_mnist.py: error: --convergence fine-tunes the random-init rows; add one to "
                         "--methods (e.g. vit-random-init).")
    data = export_fashion_mnist(args.cache_dir / "data", budget.pretrain_images, budget.test_per_class)
    run_dir = args.cache_dir / budget.mode
    write_initial_encoders(methods, budget.seeds, run_dir)
    if args.convergence:
        random_init = [r for r in rows if r.epochs is None]
        protocols = convergence_protocols(budget, [r.method.family for r in random_init])
        plan = plan_runs(random_init, protocols, budget, data, run_dir)
        results, missing, run_seconds = execute(plan, args)
        if nothing_finished(missing, plan, args.results_dir / "fashion_mnist_convergence.md", argv):
            return
        write_convergence_report(budget, chosen_epochs(budget, rows), evaluation_records(plan.evaluations, results),
                                 plan.examples, missing, len(plan.runs), run_seconds, args.jobs, argv, args.note,
                                 args.results_dir)
        print((args.results_dir / "fashion_mnist_convergence.md").read_text())
        return
    plan = plan_runs(rows, budget.protocols, budget, data, run_dir)
    results, missing, run_seconds = execute(plan, args)
    if nothing_finished(missing, plan, args.results_dir / "fashion_mnist.md", argv):
        return
    pretraining = [{**run.record, **results[run.key]} for run in plan.pretraining if run.key in results]
    write_report(budget, rows, evaluation_records(plan.evaluations, results), pretraining, plan.examples, missing,
                 len(plan.runs), run_seconds, args.jobs, argv, args.note, args.results_dir)
    print((args.results_dir / "fashion_mnist.md").read_text())


if __name__ == "__main__":
    main()
