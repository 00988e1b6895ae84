"""Does A2MIM pretraining pay off on real data? Fashion-MNIST, against no pretraining and transformers' SimMIM.

    python benchmarks/fashion_mnist.py --quick   # about 15 minutes on 2 idle CPU cores
    python benchmarks/fashion_mnist.py           # the full budget (about 65 minutes on 2 CPU cores)
    python benchmarks/fashion_mnist.py --pretrain_seed 1 --methods vit-simmim vit-a2mim \
        --results_dir benchmarks/results/fashion_mnist_pretrain_seed1   # the headline pair, another pretraining seed

Every method pretrains WITHOUT labels on the 60,000 Fashion-MNIST training images for the same number of images seen
(same steps, batch size, optimizer and schedule, same initial encoder weights within a family), then is fine-tuned
end to end with 100 labels per class and with all labels (quick mode: 300 per class), and probed on frozen features
(linear probe and k-NN on the mean of the last layer's patch tokens), each over 3 fine-tuning seeds (which also draw
the labelled subsets); test top-1 is reported as mean ± std.
The runs go through the project's entry points as subprocesses (`run_pretraining.py`, `run_finetuning.py`,
`run_linear_probe.py`, and `benchmarks/simmim_pretraining.py`, which drives transformers' `ViTForMaskedImageModeling`
with the same data path and Trainer). Results: `benchmarks/results/fashion_mnist.{json,md,png}`.

Fashion-MNIST comes from the Debian package `dataset-fashion-mnist` (or `FASHION_MNIST_DIR`); the data, the
checkpoints and the logs of every run go to `benchmarks/cache/` (ignored by git); finished runs with the same
command line and the same code (`code_fingerprint`) are reused, so an interrupted benchmark resumes where it stopped (`--cached_only` reports what has
finished without starting anything).
"""

import argparse
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
from benchmarks.machine import cpu_model, utc_timestamp  # noqa: E402
from benchmarks.fashion_mnist_report import (  # noqa: E402
    compare,
    headlines,
    markdown_comparisons,
    markdown_table,
    plot,
    summarize,
    write_json,
)

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
VIT_MASK_PATCH_SIZE = 8  # 4x4 blocks of 8 px, 10 of 16 masked (ceil(0.6 * 16)); the `vit-micro` preset's
# The ResNet is the `resnet-micro` preset: 64 px, 16 px mask blocks, mask token at the last stage (stride 16).


@dataclass(frozen=True)
class Method:
    """One row of the table: an encoder, how it is pretrained (`None`: random init) and A2MIM config overrides."""

    name: str
    description: str
    family: str  # "vit" or "resnet"
    pretraining: str | None  # None, "a2mim" or "simmim"
    preset: str = "vit-micro"
    overrides: dict = field(default_factory=dict)

    def family_config(self):
        """The `A2MIMConfig` of this method's family, before `overrides` (which reach `run_pretraining.py` as
        `--config_overrides`): the `vit-micro` recipe on `VIT_ENCODER`, or the `resnet-micro` preset."""
        from modeling_a2mim import A2MIMConfig

        if self.family == "vit":
            return A2MIMConfig.from_preset(self.preset, backbone_config=dict(VIT_ENCODER))
        return A2MIMConfig.from_preset(self.preset)


METHODS = [
    Method("ViT random init", "ViT 96x4, 32 px, no pretraining", "vit", None),
    Method("ViT SimMIM", "ViT 96x4, transformers ViTForMaskedImageModeling", "vit", "simmim"),
    Method("ViT A2MIM", "ViT 96x4, A2MIM (L1 + 0.1 freq, mean fill)", "vit", "a2mim"),
    Method("ViT A2MIM w/o freq loss", "ablation: frequency_loss_weight=0", "vit", "a2mim",
           overrides={"frequency_loss_weight": 0.0}),
    # Without mean fill the masked pixels must still be hidden: the mask token replaces their patch embeddings (with
    # the default residual token, x + t*m, the encoder would see them and the task would become copying).
    Method("ViT A2MIM w/o mean fill", "ablation: mean_fill=False, token replaces masked patches", "vit", "a2mim",
           overrides={"mean_fill": False, "mask_token_mode": "replace"}),
    Method("ResNet random init", "resnet-micro, 64 px, no pretraining", "resnet", None, preset="resnet-micro"),
    Method("ResNet A2MIM", "resnet-micro, 64 px, A2MIM (focal L1 + 0.5 freq)", "resnet", "a2mim",
           preset="resnet-micro"),
]


@dataclass(frozen=True)
class Protocol:
    """An evaluation with `per_class` labels per class (`None`: all 6,000): end-to-end fine-tuning for `epochs`, or
    (`probe=True`) `run_linear_probe.py` on frozen features, which reports a linear probe and a k-NN classifier."""

    name: str
    per_class: int | None
    epochs: int = 0
    probe: bool = False

    @property
    def columns(self) -> dict[str, str]:
        """Result key -> table column of this protocol."""
        if not self.probe:
            return {"eval_accuracy": self.name}
        return {"linear_probe_accuracy": f"linear probe ({self.name})", "knn_accuracy": f"20-NN ({self.name})"}


@dataclass(frozen=True)
class Budget:
    """Everything a mode fixes: pretraining length (the same for every method), evaluations, test set and seeds."""

    mode: str
    pretrain_images: int  # training images pretraining draws from (a fixed subset when fewer than 60,000)
    pretrain_steps: int
    pretrain_batch_size: int
    protocols: tuple[Protocol, ...]
    test_per_class: int | None  # None: the whole 10k test set
    seeds: tuple[int, ...] = (0, 1, 2)
    pretrain_seed: int = 0  # the initial encoder weights and the pretraining run's --seed (data order, masks)
    pretrain_learning_rate: float = 1e-3
    finetune_learning_rate: float = 1e-3
    finetune_batch_size: int = 64
    finetune_min_crop_scale: float = 0.5  # RandomResizedCrop area; the recipes' ImageNet 0.08 wipes out 28 px images

    @property
    def pretrain_images_seen(self) -> int:
        return self.pretrain_steps * self.pretrain_batch_size


BUDGETS = {
    "quick": Budget(
        mode="quick",
        pretrain_images=60_000,
        pretrain_steps=160,  # 20,480 images, a third of an epoch
        pretrain_batch_size=128,
        protocols=(
            Protocol("100 labels/class", 100, epochs=5),
            Protocol("300/class", 300, probe=True),
            Protocol("300 labels/class", 300, epochs=2),
        ),
        test_per_class=100,
        finetune_batch_size=32,
    ),
    "full": Budget(
        mode="full",
        pretrain_images=60_000,
        pretrain_steps=1_170,  # 149,760 images, 2.5 epochs of the 60k
        pretrain_batch_size=128,
        protocols=(
            Protocol("100 labels/class", 100, epochs=20),
            Protocol("100/class", 100, probe=True),
            Protocol("all labels", None, epochs=1),
        ),
        test_per_class=None,
    ),
}


CODE_FILES = ("modeling_a2mim", "run_pretraining.py", "run_finetuning.py", "run_linear_probe.py",
              "benchmarks/simmim_pretraining.py")


@functools.cache
def code_fingerprint() -> str:
    """A hash of the code the runs execute (`CODE_FILES`) and of the torch and transformers versions: a cached run
    is reused only when it was made by the same code, so that a table never mixes runs of different versions."""
    import torch
    import transformers

    digest = hashlib.sha256(f"torch {torch.__version__} transformers {transformers.__version__}".encode())
    for name in CODE_FILES:
        path = REPO / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(REPO)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class Run:
    """One subprocess: its command, its output folder, and the result parsed from that folder when it finishes."""

    key: str  # unique, readable; also the folder name under the cache
    command: list[str]
    output_dir: Path
    read_result: object  # callable(output_dir) -> dict
    invalidates: Path | None = None  # cached runs that used this run's output; removed when this run (re)runs
    code: str = field(default_factory=code_fingerprint)

    def cached_result(self) -> dict | None:
        """The result of an earlier run of exactly this command by the same code, if it finished."""
        done = self.output_dir / "benchmark_run.json"
        if not done.is_file():
            return None
        record = json.loads(done.read_text())
        return record if record["command"] == self.command and record.get("code") == self.code else None

    def execute(self, threads: int) -> dict:
        """Run (or reuse) the command with `threads` CPU threads; raise `RuntimeError` with the log tail on failure."""
        cached = self.cached_result()
        if cached is not None:
            print(f"[reuse] {self.key}", flush=True)
            return cached
        if self.invalidates is not None:
            shutil.rmtree(self.invalidates, ignore_errors=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
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
        record = {"key": self.key, "command": self.command, "code": self.code, "seconds": round(seconds, 1),
                  **self.read_result(self.output_dir)}
        (self.output_dir / "benchmark_run.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"[done {seconds:5.0f}s] {self.key}", flush=True)
        return record


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


def initial_checkpoints(method: Method, run_dir: Path, seed: int) -> dict[str, Path]:
    """The untrained starting point shared by every method of `method`'s family (torch seed `seed`): `a2mim`, an
    `A2MIMForMaskedImageModeling` checkpoint that A2MIM pretraining continues from, and `encoder`, its encoder exported
    with `save_encoder` (a stock ViT/ResNet checkpoint), which SimMIM pretraining and the random-init baseline start
    from. So all methods of a family start from the same encoder weights."""
    import torch

    from modeling_a2mim import A2MIMForMaskedImageModeling

    family_dir = run_dir / "init" / method.family
    paths = {"a2mim": family_dir / "a2mim", "encoder": family_dir / "encoder"}
    if not family_dir.is_dir():
        torch.manual_seed(seed)
        model = A2MIMForMaskedImageModeling(method.family_config())
        temporary = family_dir.with_name(family_dir.name + ".tmp")
        model.save_pretrained(temporary / "a2mim")
        model.save_encoder(temporary / "encoder")
        temporary.rename(family_dir)  # complete or absent, never half written
    return paths


def pretraining_run(method: Method, budget: Budget, data: dict[str, Path], run_dir: Path) -> Run:
    """The unlabelled pretraining of `method` on `data["pretrain"]`, `budget.pretrain_steps` steps."""
    output_dir = run_dir / "pretrain" / slug(method.name)
    init = initial_checkpoints(method, run_dir, budget.pretrain_seed)
    common = [
        "--data_files", str(data["pretrain"]),
        "--output_dir", str(output_dir / "checkpoint"),
        "--max_steps", str(budget.pretrain_steps),
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
        "--seed", str(budget.pretrain_seed),
        "--use_cpu",
    ]
    if method.pretraining == "simmim":
        command = [sys.executable, "benchmarks/simmim_pretraining.py", "--model_name_or_path", str(init["encoder"]),
                   "--mask_patch_size", str(VIT_MASK_PATCH_SIZE), "--mask_ratio", "0.6", *common]
    else:
        command = [sys.executable, "run_pretraining.py", "--model_name_or_path", str(init["a2mim"]), *common]
        if method.family == "resnet":
            # run_pretraining.py's ResNet recipe fills `cosine_with_min_lr` kwargs even when --lr_scheduler_type is
            # given, which plain cosine rejects; empty kwargs keep the same schedule as every other method.
            command += ["--lr_scheduler_kwargs", "{}"]
        if method.overrides:
            overrides = ",".join(f"{key}={json.dumps(value)}" for key, value in method.overrides.items())
            command += ["--config_overrides", overrides]
    return Run(f"pretrain {method.name}", command, output_dir, read_result=read_pretraining_result,
               invalidates=evaluation_dir(method, run_dir))


def read_pretraining_result(output_dir: Path) -> dict:
    metrics = json.loads((output_dir / "checkpoint" / "all_results.json").read_text())
    return {"checkpoint": str(output_dir / "checkpoint"), "train_loss": metrics.get("train_loss")}


def evaluation_dir(method: Method, run_dir: Path) -> Path:
    return run_dir / "evaluate" / slug(method.name)


def evaluation_run(method: Method, checkpoint: Path, protocol: Protocol, seed: int, budget: Budget,
                   data: dict[str, Path], run_dir: Path) -> Run:
    """Fine-tune or probe `checkpoint` under `protocol` with `seed` (which also draws the label subset); the result
    maps each of `protocol.columns` to its test top-1."""
    output_dir = evaluation_dir(method, run_dir) / slug(protocol.name + (" probe" if protocol.probe else ""))
    output_dir = output_dir / f"seed{seed}"
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
            "--num_train_epochs", str(protocol.epochs),
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

    return Run(f"{protocol.name}{' probe' if protocol.probe else ''} {method.name} seed {seed}", command, output_dir,
               read_result=read_result)


def machine_description() -> str:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_model()}, {cores} CPU cores, torch {torch.__version__}, {platform.system()} {platform.release()}"


def display(command: list[str]) -> str:
    """A command line as a user types it from the repository root."""
    return shlex.join(["python", *command[1:]]).replace(str(REPO) + os.sep, "")


# Comparisons the md states with a verdict: (candidate, reference).
COMPARISONS = [
    ("ViT A2MIM", "ViT SimMIM"),
    ("ViT A2MIM", "ViT random init"),
    ("ViT SimMIM", "ViT random init"),
    ("ViT A2MIM w/o freq loss", "ViT A2MIM"),
    ("ViT A2MIM w/o mean fill", "ViT A2MIM"),
    ("ResNet A2MIM", "ResNet random init"),
]


def write_report(budget: Budget, methods: list[Method], records: list[dict], pretraining: list[dict],
                 example_runs: list[Run], missing: list[str], run_seconds: float, jobs: int, argv: list[str],
                 note: str | None, results_dir: Path) -> None:
    protocols = [column for p in budget.protocols for column in p.columns.values()]
    names = [m.name for m in methods]
    summaries = summarize(records)
    comparisons = compare(summaries, COMPARISONS, protocols)
    machine = machine_description()
    date = utc_timestamp()
    shown = [a for i, a in enumerate(argv) if a != "--note" and (i == 0 or argv[i - 1] != "--note")]
    command = shlex.join(["python", "benchmarks/fashion_mnist.py", *(a for a in shown if a != "--cached_only")])
    pool = "all 60,000" if budget.pretrain_images == 60_000 else f"a fixed subset of {budget.pretrain_images:,} of the"
    test_set = ("all 10,000 test images" if budget.test_per_class is None else
                f"{10 * budget.test_per_class:,} test images ({budget.test_per_class} per class, fixed)")
    budget_lines = [
        f"- Pretraining (no labels): {budget.pretrain_steps} steps x batch {budget.pretrain_batch_size} = "
        f"**{budget.pretrain_images_seen:,} images seen** by every method, drawn from {pool} training images; AdamW "
        f"lr {budget.pretrain_learning_rate}, wd 0.05, 10% warmup, cosine, grad clip 5; block mask "
        f"{VIT_MASK_PATCH_SIZE} px at 32 px (ViT) / 16 px at 64 px (ResNet), ratio 0.6; one pretraining seed "
        f"({budget.pretrain_seed}); "
        "all methods of a family start from the same random encoder weights (the random-init rows).",
        f"- Fine-tuning (`run_finetuning.py`, no `--recipe`: AdamW + cosine): end to end, lr "
        f"{budget.finetune_learning_rate}, wd 0.05, 10% warmup, batch {budget.finetune_batch_size}, "
        f"RandomResizedCrop (scale {budget.finetune_min_crop_scale}-1) + flip, the same for every method; "
        + "; ".join(f"{p.name}: {p.epochs} epoch(s)" for p in budget.protocols if not p.probe)
        + ". Labelled subsets are drawn class-balanced with the fine-tuning seed.",
        "- Probes (`run_linear_probe.py --pooling mean`): frozen encoder, features = the mean of the last layer's "
        "patch tokens (ViT, after the final norm; the cls token, which neither MIM method trains, is left out) or "
        "global average pooling (ResNet); logistic regression (C=1, standardized features) and cosine 20-NN; "
        + "; ".join(p.name for p in budget.protocols if p.probe) + ".",
        f"- Seeds: fine-tuning seeds {', '.join(map(str, budget.seeds))} (mean ± sample std over them).",
        f"- Test set: {test_set}.",
        "- Images: Fashion-MNIST 28x28 grayscale, converted to 3 channels and resized to 32 px (ViT, patch 4) or "
        "64 px (ResNet); ImageNet normalization.",
    ]
    pretraining_lines = [f"| {r['method']} | {r['seconds']:.0f} | {r['train_loss']:.4f} |" for r in pretraining]
    markdown = "\n".join([
        f"# Fashion-MNIST: does A2MIM pretraining pay off? ({budget.mode} mode)",
        "",
        f"Run {date} on {machine}; the runs took {run_seconds / 60:.0f} min summed over runs ({jobs} in "
        f"parallel). Command: `{command}` (code fingerprint `{code_fingerprint()}`)"
        + (f"\n\n{note}" if note else ""),
        "",
        "Test top-1 (%), mean ± std over fine-tuning seeds (n = number of seeds where fewer than "
        f"{len(budget.seeds)} finished); best of each column in bold.",
        "",
        *([f"**Incomplete: {len(missing)} runs did not finish and are left out:** " + "; ".join(missing) + ".", ""]
          if missing else []),
        markdown_table(summaries, names, protocols, {m.name: m.description for m in methods}, len(budget.seeds)),
        "",
        "Verdicts: `better`/`worse` when the difference exceeds twice its standard error over seeds, else "
        "`no clear difference`.",
        "",
        *headlines(comparisons),
        "",
        markdown_comparisons(comparisons),
        "",
        "## Budget",
        "",
        *budget_lines,
        "",
        "| Pretraining | seconds | mean train loss (own objective) |",
        "|---|---:|---:|",
        *pretraining_lines,
        "",
        "## Commands",
        "",
        "Every run is a subprocess from the repository root (`benchmarks/cache/` holds data, checkpoints, logs):",
        "",
        "```bash",
        *[display(r["command"]) for r in pretraining],
        *[display(run.command) for run in example_runs],
        "```",
        "",
        "(One fine-tuning and one probe command per protocol are shown; the others differ only in "
        "`--model_name_or_path`, `--seed` and the output folder.)",
        "",
    ])
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "fashion_mnist.md").write_text(markdown)
    plot(summaries, names, protocols, results_dir / "fashion_mnist.png",
         f"Fashion-MNIST, {budget.mode} mode: {budget.pretrain_images_seen:,} pretraining images per method")
    write_json(results_dir / "fashion_mnist.json", {
        "date": date,
        "machine": machine,
        "command": command,
        "code_fingerprint": code_fingerprint(),
        "run_seconds_summed": round(run_seconds, 1),
        "budget": asdict(budget),
        "methods": [asdict(m) for m in methods],
        "summary": {m: {p: asdict(s) for p, s in by_protocol.items()} for m, by_protocol in summaries.items()},
        "comparisons": comparisons,
        "pretraining": pretraining,
        "missing_runs": missing,
        "runs": records,
    })


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="The ~15 minute budget instead of the full one.")
    parser.add_argument("--jobs", type=int, default=2, help="Runs in parallel (default 2, one per core).")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run (default 1).")
    parser.add_argument("--methods", nargs="+", choices=[slug(m.name) for m in METHODS], metavar="NAME",
                        help=f"Only these methods (default: all of {', '.join(slug(m.name) for m in METHODS)}).")
    parser.add_argument("--pretrain_seed", type=int, default=0,
                        help="Seed of the initial encoder weights and of pretraining (default 0); another seed runs in "
                        "its own cache folder. Give it its own --results_dir to keep the default results.")
    parser.add_argument("--cached_only", action="store_true",
                        help="Start no run: report the finished ones and list the missing ones in the md.")
    parser.add_argument("--note", help="A sentence for the md, e.g. about other load on the machine during the run.")
    parser.add_argument("--results_dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--cache_dir", type=Path, default=CACHE_DIR)
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    budget = dataclasses.replace(BUDGETS["quick" if args.quick else "full"], pretrain_seed=args.pretrain_seed)
    methods = [m for m in METHODS if args.methods is None or slug(m.name) in args.methods]
    data = export_fashion_mnist(args.cache_dir / "data", budget.pretrain_images, budget.test_per_class)
    run_dir = args.cache_dir / (budget.mode + (f"-pretrain-seed{budget.pretrain_seed}" if budget.pretrain_seed else ""))

    # Pretraining first, then the evaluations protocol by protocol (so that an interrupted run still has whole
    # columns), within each the encoders that need no pretraining first, the others as their pretraining finishes.
    pretraining_runs = {m.name: pretraining_run(m, budget, data, run_dir) for m in methods if m.pretraining}
    checkpoints = {name: run.output_dir / "checkpoint" for name, run in pretraining_runs.items()}
    checkpoints.update({m.name: initial_checkpoints(m, run_dir, budget.pretrain_seed)["encoder"]
                        for m in methods if not m.pretraining})
    evaluation_runs, keys, after = [], [], {}
    for protocol in budget.protocols:
        for method in sorted(methods, key=lambda m: m.pretraining is not None):
            for seed in budget.seeds:
                run = evaluation_run(method, checkpoints[method.name], protocol, seed, budget, data, run_dir)
                evaluation_runs.append(run)
                keys.append({"method": method.name, "seed": seed})
                if method.pretraining:
                    after[run.key] = pretraining_runs[method.name].key
    runs = [*pretraining_runs.values(), *evaluation_runs]
    if args.cached_only:
        results = [run.cached_result() for run in runs]
    else:
        results = run_all(runs, args.jobs, args.threads, after)
    missing = [run.key for run, result in zip(runs, results) if result is None]
    pretraining = [{"method": name, **result} for name, result in zip(pretraining_runs, results) if result]
    records = [{**key, "protocol": column, "accuracy": accuracy, "seconds": r["seconds"]}
               for key, r in zip(keys, results[len(pretraining_runs):]) if r
               for column, accuracy in r["accuracies"].items()]
    example_runs = evaluation_runs[:: len(methods) * len(budget.seeds)]
    run_seconds = sum(result["seconds"] for result in results if result)
    write_report(budget, methods, records, pretraining, example_runs, missing, run_seconds, args.jobs, argv,
                 args.note, args.results_dir)
    print((args.results_dir / "fashion_mnist.md").read_text())


if __name__ == "__main__":
    main()
