"""Speed and memory of A2MIM pretraining against its peers, measured side by side on this machine.

Run by hand (never from the tests):

    python benchmarks/speed.py            # default CPU run (about 10 minutes on 2 cores)
    python benchmarks/speed.py --compile  # + the torch.compile rows (about 20 minutes on 2 cores)
    python benchmarks/speed.py --quick    # smoke run (about 2 minutes)
    python benchmarks/speed.py --tiny --compile --output-dir /tmp/speed  # runs it all at micro sizes (~5 min)

It writes `benchmarks/results/speed.{json,md,png}` and answers three questions:

1. Training-step throughput (images/s of forward + backward + AdamW step) in one process; the contenders that are
   compared interleave step by step inside every repeat (the order rotates between repeats) so that background load
   hits all of them alike; each contender's median images/s and, per comparison, the median over repeats of the
   ratio measured inside each repeat are reported.
   - A2MIM-ViT on a stock `ViTConfig` encoder vs transformers' `ViTForMaskedImageModeling` (SimMIM) with the same
     encoder: the cost of A2MIM's extras (mean fill, residual mask token, frequency loss). Goal: >= 0.95.
   - The BEiT-style preset (relative position bias, layer scale: what the A2MIM recipe trains) vs the same SimMIM
     step, for information: the encoder differs, so no goal applies.
   - A2MIM-ResNet-50 vs a supervised `ResNetForImageClassification` step (the encoder-only floor). Goal: >= 0.85.
   - With `--compile`, `torch.compile(model)` rows (default inductor backend and mode, static shapes: the module
     compile that `run_pretraining.py --torch_compile` gets through the Trainer) of SimMIM and A2MIM on the first
     `--vit-sizes` ViTConfig encoder and of both ResNet-50 steps, interleaved with their eager rows: compiled / eager
     per model (for information) and A2MIM compiled / its peer compiled (the goals above).
   Each row's first step (for a compiled row, compilation from a fresh inductor cache included, the compiler itself
   warmed on a toy function before) runs once before the repeats, is reported apart as "first step (s)" and never
   counts in the timed steps.
2. Peak memory of each contender's training step, each in a fresh subprocess, over the two steps after the first
   one (which compiles the compiled rows and allocates the AdamW state): on CPU the growth of the peak resident set
   size (VmHWM, reset after the first step) over the resident size before the model was built, i.e. weights +
   gradients + AdamW state + activations + allocator slack (+ the compiled code of a compiled row; the compiler itself
   is imported and warmed on a toy function before that baseline); on CUDA `torch.cuda.max_memory_allocated`.
3. Input pipeline: images/s that the streaming data path of `run_pretraining.py` (JPEG decode, augmentation,
   masking, collation, with its default number of data loader workers) delivers, against the images/s the A2MIM
   training step consumes. Goal: >= 2x.

On CUDA (untested here: the benchmark machine has no GPU) the steps, eager and compiled rows alike, run under bf16
autocast by default (`--dtype fp16` adds a GradScaler), with larger batches.

`--tiny` swaps in the `vit-micro` and `resnet-micro` presets (32 and 64 px) under the same contender names: a check
that every part of the benchmark runs, in minutes, not a measurement.
"""

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
from transformers import ResNetConfig, ResNetForImageClassification, ViTConfig, ViTForMaskedImageModeling

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_model, utc_timestamp  # noqa: E402
from modeling_a2mim import A2MIMConfig, A2MIMForMaskedImageModeling  # noqa: E402
from modeling_a2mim.masking import BlockMaskGenerator  # noqa: E402
from modeling_a2mim.presets import PRESETS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VIT_SIZES = {"s": "vit-small", "b": "vit-base"}
TINY_PRESETS = {"vit-small": "vit-micro", "resnet-50": "resnet-micro"}  # --tiny
GOALS = {"vit": 0.95, "resnet": 0.85, "pipeline": 2.0}


# ----- contenders -------------------------------------------------------------------------------------------------
def plain_vit_backbone(preset: str) -> dict:
    """A stock `ViTConfig` (as SimMIM uses it) with the width, depth, heads and patch size of an A2MIM ViT preset."""
    beit = PRESETS[preset]["backbone_config"]
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size", "image_size")
    return {"model_type": "vit", **{key: beit[key] for key in keys}}


def build_a2mim(config: A2MIMConfig):
    model = A2MIMForMaskedImageModeling(config)

    def inputs(pixel_values, block_mask):
        return {"pixel_values": pixel_values, "bool_masked_pos": block_mask}

    return model, inputs


def build_simmim(preset: str):
    """transformers' SimMIM: `ViTForMaskedImageModeling` on the same encoder, fed the same 32 px block masks at
    patch resolution (as `examples/pytorch/image-pretraining/run_mim.py` does)."""
    backbone = plain_vit_backbone(preset)
    backbone.pop("model_type")
    config = ViTConfig(**backbone, encoder_stride=backbone["patch_size"])
    model = ViTForMaskedImageModeling(config)
    repeat = PRESETS[preset]["mask_patch_size"] // backbone["patch_size"]

    def inputs(pixel_values, block_mask):
        patch_mask = block_mask.repeat_interleave(repeat, 1).repeat_interleave(repeat, 2).flatten(1)
        return {"pixel_values": pixel_values, "bool_masked_pos": patch_mask}

    return model, inputs


def build_supervised_resnet(preset: str):
    """`ResNetForImageClassification` (1000 classes, cross-entropy) on the encoder of the A2MIM preset. The problem
    type is set up front: transformers' loss sets it on the first call otherwise, which recompiles a compiled row."""
    backbone = dict(PRESETS[preset]["backbone_config"])
    backbone.pop("model_type")
    config = ResNetConfig(**backbone, num_labels=1000, problem_type="single_label_classification")
    model = ResNetForImageClassification(config)

    def inputs(pixel_values, block_mask):
        labels = torch.arange(pixel_values.shape[0], device=pixel_values.device) % 1000
        return {"pixel_values": pixel_values, "labels": labels}

    return model, inputs


@dataclass
class Contender:
    name: str
    group: str  # contenders of one group are compared with each other and interleaved when timed
    description: str
    build: Callable  # () -> (model, inputs(pixel_values, block_mask) -> forward kwargs)
    preset: str  # the A2MIM preset whose image size and masks the step uses
    compiled: bool = False  # the step calls torch.compile(model)


COMPILED_SUFFIX = "-compiled"


def compiled_names(vit_sizes: list[str]) -> list[str]:
    """The eager contenders that `--compile` adds a compiled row for: SimMIM and A2MIM on the first ViTConfig encoder
    of the run, and both ResNet-50 steps."""
    size = vit_sizes[0]
    return [f"simmim-vit-{size}", f"a2mim-vit-{size}", "supervised-resnet-50", "a2mim-resnet-50"]


def contenders(vit_sizes: list[str], compile_rows: bool = False, tiny: bool = False) -> list[Contender]:
    listed = []
    for size in vit_sizes:
        preset = VIT_SIZES[size]
        preset, vit = (TINY_PRESETS[preset], "`vit-micro` size") if tiny else (preset, f"ViT-{size.upper()}/16")
        plain = A2MIMConfig.from_preset(preset, backbone_config=plain_vit_backbone(preset))
        listed += [
            Contender(f"simmim-vit-{size}", f"vit-{size}", f"ViTForMaskedImageModeling (SimMIM), {vit}",
                      partial(build_simmim, preset), preset),
            Contender(f"a2mim-vit-{size}", f"vit-{size}", f"A2MIM on the same ViTConfig encoder, {vit}",
                      partial(build_a2mim, plain), preset),
            Contender(f"a2mim-beit-{size}", f"vit-{size}", f"A2MIM `{preset}` preset (BEiT-style encoder)",
                      partial(build_a2mim, A2MIMConfig.from_preset(preset)), preset),
        ]
    resnet = TINY_PRESETS["resnet-50"] if tiny else "resnet-50"
    listed += [
        Contender("supervised-resnet-50", "resnet-50", f"ResNetForImageClassification on the `{resnet}` encoder, "
                  "supervised step", partial(build_supervised_resnet, resnet), resnet),
        Contender("a2mim-resnet-50", "resnet-50", f"A2MIM `{resnet}` preset",
                  partial(build_a2mim, A2MIMConfig.from_preset(resnet)), resnet),
    ]
    if compile_rows:
        eager = {contender.name: contender for contender in listed}
        listed += [
            replace(eager[name], name=name + COMPILED_SUFFIX, description=eager[name].description + ", torch.compile",
                    compiled=True)
            for name in compiled_names(vit_sizes)
        ]
    return listed


# ----- one training step ------------------------------------------------------------------------------------------
class TrainStep:
    """Forward + backward + AdamW step of one contender on a fixed batch (random normalized images, block masks)."""

    def __init__(self, contender: Contender, args):
        torch.manual_seed(0)
        self.device = torch.device(args.device)
        model, make_inputs = contender.build()
        self.model = model.to(self.device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.05)
        # The module compile of `--torch_compile` through the Trainer (inductor, default mode), with static shapes:
        # the compiled rows share code objects (transformers' forward wrappers), and automatic dynamic shapes would
        # otherwise make a later row's graphs dynamic because an earlier row's inputs differed.
        self.forward = torch.compile(self.model, dynamic=False) if contender.compiled else self.model
        preset = PRESETS[contender.preset]
        size = preset["image_size"]
        pixel_values = torch.randn(args.batch_size, 3, size, size)
        mask_generator = BlockMaskGenerator(size, preset["mask_patch_size"], preset["mask_ratio"])
        block_mask = mask_generator(args.batch_size, torch.Generator().manual_seed(0))
        self.inputs = {k: v.to(self.device) for k, v in make_inputs(pixel_values, block_mask).items()}
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
        self.scaler = torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None
        self.batch_size = args.batch_size

    def step(self) -> None:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            loss = self.forward(**self.inputs).loss
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timed_step(self) -> float:
        """Seconds of one step, waiting for the device before and after."""
        self.synchronize()
        start = time.perf_counter()
        self.step()
        self.synchronize()
        return time.perf_counter() - start


def warm_compiler(device: str) -> None:
    """Compiles a toy function, so that inductor's one-off import and worker start-up count in neither the first
    compiled row's first step nor a compiled row's memory."""
    torch.compile(lambda x: (x * 2).sum())(torch.ones(2, device=device))


def measure_throughput(contenders_: list[Contender], args) -> tuple[dict[str, list[float]], dict[str, float]]:
    """images/s per contender and repeat, and the seconds of each contender's first step.

    The first step (which compiles a compiled row) runs once, timed apart, before the repeats. In every repeat each
    group (the contenders that are compared with each other) is warmed up, then its timed steps interleave step by
    step (A, B, C, A, B, C, ...), so that a burst of background load slows all of them alike. The order of the groups
    and inside a group rotates between repeats.
    """
    if any(contender.compiled for contender in contenders_):
        warm_compiler(args.device)
    steps = {contender.name: TrainStep(contender, args) for contender in contenders_}
    first_steps = {}
    for name, train_step in steps.items():
        first_steps[name] = train_step.timed_step()
        print(f"  first step  {name:<31} {first_steps[name]:8.2f} s", flush=True)
    groups = {}
    for contender in contenders_:
        groups.setdefault(contender.group, []).append(contender.name)
    results = {name: [] for name in steps}
    for repeat in range(args.repeats):
        for group in _rotated(list(groups), repeat):
            names = _rotated(groups[group], repeat)
            for name in names:
                for _ in range(args.warmup):
                    steps[name].step()
            seconds = dict.fromkeys(names, 0.0)
            for _ in range(args.steps):
                for name in names:
                    seconds[name] += steps[name].timed_step()
            for name in names:
                results[name].append(args.batch_size * args.steps / seconds[name])
                rate = results[name][-1]
                print(f"  repeat {repeat + 1}/{args.repeats}  {name:<31} {rate:8.2f} images/s", flush=True)
    return results, first_steps


def _rotated(items: list, shift: int) -> list:
    shift %= len(items)
    return items[shift:] + items[:shift]


# ----- peak memory, one fresh process per contender ---------------------------------------------------------------
def _proc_status_kib(field_name: str) -> int:
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field_name}:\s+(\d+) kB", status.read(), re.M).group(1))


def memory_probe(name: str, args) -> dict:
    """Peak memory of `name`'s training step in this (fresh) process, in MiB: over the two steps after the first one,
    which compiles a compiled row and allocates the AdamW state."""
    listed = contenders(args.vit_sizes, compile_rows=args.compile, tiny=args.tiny)
    contender = next(contender for contender in listed if contender.name == name)
    cuda = args.device.startswith("cuda")
    if contender.compiled:
        warm_compiler(args.device)
    baseline = None if cuda else _proc_status_kib("VmRSS")
    train_step = TrainStep(contender, args)
    train_step.step()
    train_step.synchronize()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as clear_refs:  # resets VmHWM (the peak RSS) to the current RSS
            clear_refs.write("5")
    for _ in range(2):
        train_step.step()
    train_step.synchronize()
    if cuda:
        return {"peak_mib": torch.cuda.max_memory_allocated() / 2**20, "measure": "torch.cuda.max_memory_allocated"}
    peak_mib = (_proc_status_kib("VmHWM") - baseline) / 1024
    return {"peak_mib": peak_mib, "measure": "peak RSS growth (VmHWM - VmRSS before the model was built)"}


def measure_memory(names: list[str], args) -> dict[str, dict]:
    results = {}
    for name in names:
        command = [sys.executable, __file__, "--memory-probe", name, *_forwarded_options(args)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
        print(f"  {name:<31} {results[name]['peak_mib']:8.0f} MiB", flush=True)
    return results


def _forwarded_options(args) -> list[str]:
    options = ["--device", args.device, "--dtype", args.dtype, "--batch-size", str(args.batch_size),
               "--threads", str(torch.get_num_threads()), "--vit-sizes", *args.vit_sizes]
    return options + (["--compile"] if args.compile else []) + (["--tiny"] if args.tiny else [])


# ----- input pipeline ---------------------------------------------------------------------------------------------
def synthetic_photo(rng, width: int, height: int):
    """A photo-like RGB image: a smooth random colour field, a few shapes with soft edges, and sensor noise (so that
    JPEG/PNG sizes and decode costs resemble photographs rather than flat test patterns)."""
    import numpy as np
    import PIL.Image
    import PIL.ImageDraw
    import PIL.ImageFilter

    field = PIL.Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((width, height), 3)
    draw = PIL.ImageDraw.Draw(field)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(20, width // 2)), y0 + int(rng.integers(20, height // 2))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    field = field.filter(PIL.ImageFilter.GaussianBlur(1.5))
    pixels = np.asarray(field, dtype=np.int16) + rng.normal(0, 16, (height, width, 3)).astype(np.int16)
    return PIL.Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def write_synthetic_parquet(folder: Path, count: int, image_format: str, shards: int = 8) -> list[str]:
    """`count` photo-like images of 256-400 px per side, encoded as JPEG (quality 90) or PNG, in `shards` parquet
    files with a `datasets.Image` column, like a Hub image dataset. Returns the file paths."""
    import io

    import numpy as np
    from datasets import Dataset, Features, Image, disable_progress_bars

    disable_progress_bars()
    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(count):
        image = synthetic_photo(rng, int(rng.integers(256, 401)), int(rng.integers(256, 401)))
        buffer = io.BytesIO()
        image.save(buffer, format=image_format, **({"quality": 90} if image_format == "JPEG" else {}))
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    files = []
    for shard in range(shards):
        path = folder / f"{image_format.lower()}-{shard:02d}.parquet"
        Dataset.from_dict({"image": encoded[shard::shards]}, features=Features({"image": Image()})).to_parquet(path)
        files.append(str(path))
    return files


def script_default_num_workers() -> int:
    """`--dataloader_num_workers` of `run_pretraining.py` when the user does not pass it."""
    import run_pretraining

    training_args = run_pretraining.parse_arguments(["--output_dir", "unused"])[2]
    return training_args.dataloader_num_workers


def pipeline_images_per_second(files: list[str], num_workers: int, args) -> dict:
    """images/s delivered by `run_pretraining.py`'s data path: `prepare_splits` (streamed parquet, shuffle buffer),
    `PretrainingTransform`, `MaskingCollator`, and the Trainer's own train DataLoader with `num_workers` workers.

    Timed from the first batch to the end of one pass (the first batch's latency, which includes filling the shuffle
    buffer and starting the workers, is reported apart)."""
    from transformers import Trainer, TrainingArguments, ViTImageProcessor

    from modeling_a2mim.data.collator import MaskingCollator
    from modeling_a2mim.training.arguments import DataArguments, prepare_splits

    config = A2MIMConfig.from_preset("resnet-50")
    size = config.image_size
    image_processor = ViTImageProcessor(size={"height": size, "width": size})
    train_dataset, _, image_column = prepare_splits(DataArguments(data_files=files, streaming=True), seed=0)
    collator = MaskingCollator.from_config(config, image_processor, train=True, image_column=image_column)
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=args.batch_size, dataloader_num_workers=num_workers,
            remove_unused_columns=False, max_steps=1, use_cpu=not args.device.startswith("cuda"), report_to=[],
        )
        trainer = Trainer(model=torch.nn.Linear(1, 1), args=training_args, train_dataset=train_dataset,
                          data_collator=collator)
        start = time.perf_counter()
        batches = iter(trainer.get_train_dataloader())
        first = next(batches)
        first_latency = time.perf_counter() - start
        start, images = time.perf_counter(), 0
        for batch in batches:
            images += len(batch["pixel_values"])
        elapsed = time.perf_counter() - start
    if tuple(first["bool_masked_pos"].shape[1:]) != (config.mask_grid_size, config.mask_grid_size):
        raise RuntimeError(f"Unexpected mask shape {tuple(first['bool_masked_pos'].shape)} from the collator.")
    return {"num_workers": num_workers, "images_per_second": images / elapsed, "first_batch_s": first_latency,
            "images": images + len(first["pixel_values"])}


def measure_pipeline(args, consumption: dict[str, float]) -> dict:
    """Pipeline images/s for JPEG and PNG inputs at the script's default worker count (and at `--num-workers`),
    against the fastest A2MIM training step of this run."""
    default_workers = script_default_num_workers()
    worker_counts = sorted({default_workers, *args.num_workers})
    consumer, consumed = max(consumption.items(), key=lambda item: item[1])
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for image_format in ("JPEG", "PNG"):
            files = write_synthetic_parquet(Path(folder), args.pipeline_images, image_format)
            megabytes = sum(os.path.getsize(f) for f in files) / 2**20
            for num_workers in worker_counts:
                run = pipeline_images_per_second(files, num_workers, args)
                run.update(format=image_format, mean_file_kib=1024 * megabytes / args.pipeline_images,
                           ratio=run["images_per_second"] / consumed, script_default=num_workers == default_workers)
                runs.append(run)
                print(f"  {image_format:<4} workers={num_workers}  {run['images_per_second']:8.1f} images/s  "
                      f"({run['ratio']:.1f}x {consumer})", flush=True)
    return {"consumer": consumer, "consumer_images_per_second": consumed, "goal": GOALS["pipeline"],
            "script_default_num_workers": default_workers, "runs": runs}


def pipeline_markdown(pipeline: dict) -> list[str]:
    lines = [
        f"Input pipeline (streamed parquet of synthetic photo-like 256-400 px images -> decode, RandomResizedCrop 224 "
        f"+ flip + normalize, block masks, collate; run_pretraining.py's default is "
        f"{pipeline['script_default_num_workers']} data loader workers) against the fastest A2MIM training step of "
        f"this run ({pipeline['consumer']}, {pipeline['consumer_images_per_second']:.2f} images/s):",
        "",
        "| format | mean file (KiB) | workers | images/s | first batch (s) | x model consumption | goal | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in pipeline["runs"]:
        workers = f"{run['num_workers']}{' (script default)' if run['script_default'] else ''}"
        verdict = "met" if run["ratio"] >= pipeline["goal"] else "MISSED"
        lines.append(
            f"| {run['format']} | {run['mean_file_kib']:.0f} | {workers} | {run['images_per_second']:.1f} | "
            f"{run['first_batch_s']:.1f} | **{run['ratio']:.1f}** | >= {pipeline['goal']:.0f} | {verdict} |"
        )
    return lines


# ----- comparisons and report -------------------------------------------------------------------------------------
@dataclass
class Comparison:
    name: str
    contender: str
    peer: str
    goal: float | None
    note: str
    no_goal: str = "different encoder"  # why there is no goal, when `goal` is None
    ratio: float = field(default=float("nan"))
    repeat_ratios: list[float] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return f"no goal ({self.no_goal})"
        return "met" if self.ratio >= self.goal else "MISSED"


def comparisons(vit_sizes: list[str], compile_rows: bool = False) -> list[Comparison]:
    vit_note = "same ViTConfig encoder: the cost of mean fill, residual token and frequency loss"
    resnet_note = "decoder, mean fill, mask token and losses over the encoder-only step"
    listed = []
    for size in vit_sizes:
        listed += [
            Comparison(f"A2MIM-ViT-{size.upper()} / SimMIM", f"a2mim-vit-{size}", f"simmim-vit-{size}", GOALS["vit"],
                       vit_note),
            Comparison(f"A2MIM BEiT-style ViT-{size.upper()} / SimMIM", f"a2mim-beit-{size}", f"simmim-vit-{size}",
                       None, "the recipe's encoder adds relative position bias and layer scale"),
        ]
    listed.append(Comparison("A2MIM-ResNet-50 / supervised ResNet-50", "a2mim-resnet-50", "supervised-resnet-50",
                             GOALS["resnet"], resnet_note))
    if compile_rows:
        simmim, a2mim, supervised, resnet = compiled_names(vit_sizes)
        vit = f"ViT-{vit_sizes[0].upper()}"
        speed_ups = {simmim: f"SimMIM {vit}", a2mim: f"A2MIM-{vit}", supervised: "supervised ResNet-50",
                     resnet: "A2MIM-ResNet-50"}
        listed += [
            Comparison(f"{label} compiled / eager", name + COMPILED_SUFFIX, name, None,
                       "torch.compile speed-up of the same training step", no_goal="for information")
            for name, label in speed_ups.items()
        ]
        listed += [
            Comparison(f"A2MIM-{vit} compiled / SimMIM compiled", a2mim + COMPILED_SUFFIX, simmim + COMPILED_SUFFIX,
                       GOALS["vit"], f"both compiled, {vit_note}"),
            Comparison("A2MIM-ResNet-50 compiled / supervised ResNet-50 compiled", resnet + COMPILED_SUFFIX,
                       supervised + COMPILED_SUFFIX, GOALS["resnet"], f"both compiled, {resnet_note}"),
        ]
    return listed


def machine_info() -> dict:
    info = {
        "date": utc_timestamp(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_start": os.getloadavg()[0],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    import transformers

    info["transformers"] = transformers.__version__
    return info


def summarize(throughput: dict[str, list[float]], compared: list[Comparison]) -> None:
    for comparison in compared:
        if comparison.contender in throughput and comparison.peer in throughput:
            ours, peer = throughput[comparison.contender], throughput[comparison.peer]
            # Ratios are taken inside each repeat (where the contenders shared the same load), then their median.
            comparison.repeat_ratios = [a / b for a, b in zip(ours, peer)]
            comparison.ratio = statistics.median(comparison.repeat_ratios)


def markdown(report: dict) -> str:
    machine, settings = report["machine"], report["settings"]
    size = "micro presets at 32/64 px (--tiny: a check that the benchmark runs, not a measurement)" \
        if settings["tiny"] else "224 px"
    compiled = (
        f" Rows named *{COMPILED_SUFFIX} call `torch.compile(model)` (inductor, default mode, static shapes), under "
        f"the same {settings['dtype']} as their eager rows, with which they interleave."
        if settings["compile"] else ""
    )
    lines = [
        f"Speed and memory, {machine['date']}: {machine['cpu']}, {machine['cores']} cores, {machine['torch_threads']} "
        f"torch threads, torch {machine['torch']}, transformers {machine['transformers']}"
        + (f", {machine['gpu']}" if "gpu" in machine else "")
        + f"; load average {machine['load_average_start']:.1f} at the start, "
        f"{machine['load_average_end']:.1f} at the end.",
        "",
        f"Training step = forward + backward + AdamW step, {size}, batch {settings['batch_size']}, device "
        f"{settings['device']}, {settings['dtype']}; {settings['warmup']} warmup + {settings['steps']} timed steps "
        f"per repeat, {settings['repeats']} repeats with the compared contenders interleaved step by step.{compiled} "
        "Each row's first step (for a compiled row, compilation from a fresh inductor cache included) runs once "
        "before the repeats and is reported apart. "
        f"Memory: {report['memory_measure']} over the two steps after the first, one fresh process per contender"
        + (" (for a compiled row the compiler is warmed on a toy function before the baseline)."
           if settings["compile"] else "."),
        "",
        "| contender | images/s (median) | per repeat | first step (s) | peak memory (MiB) |",
        "|---|---:|---|---:|---:|",
    ]
    for name, entry in report["throughput"].items():
        memory = report["memory"].get(name, {}).get("peak_mib")
        runs = ", ".join(f"{value:.2f}" for value in entry["images_per_second"])
        lines.append(
            f"| {name}: {entry['description']} | {entry['median']:.2f} | {runs} | {entry['first_step_s']:.1f} | "
            f"{'n/a' if memory is None else f'{memory:.0f}'} |"
        )
    lines += ["", "| comparison | throughput ratio: median (per repeat) | goal | verdict | memory ratio |"]
    lines += ["|---|---|---:|---|---:|"]
    for entry in report["comparisons"]:
        per_repeat = ", ".join(f"{value:.2f}" for value in entry["repeat_ratios"])
        goal = "-" if entry["goal"] is None else f">= {entry['goal']:.2f}"
        memory_ratio = entry.get("memory_ratio")
        lines.append(
            f"| {entry['name']} ({entry['note']}) | **{entry['ratio']:.2f}** ({per_repeat}) | {goal} | "
            f"{entry['verdict']} | {'n/a' if memory_ratio is None else f'{memory_ratio:.2f}'} |"
        )
    if report.get("pipeline"):
        lines += ["", *pipeline_markdown(report["pipeline"])]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["throughput"])
    medians = [report["throughput"][name]["median"] for name in names]
    colors = ["tab:orange" if name.startswith("a2mim") else "tab:gray" for name in names]
    hatches = ["//" if name.endswith(COMPILED_SUFFIX) else "" for name in names]
    figure, axis = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    axis.barh(names[::-1], medians[::-1], color=colors[::-1], hatch=hatches[::-1])
    for y, value in enumerate(medians[::-1]):
        axis.text(value, y, f" {value:.1f}", va="center")
    machine, settings = report["machine"], report["settings"]
    axis.set_xlabel(f"training images/s (median of {settings['repeats']} repeats, batch {settings['batch_size']})")
    check = " (--tiny: a check, not a measurement)" if settings["tiny"] else ""
    axis.set_title(f"A2MIM vs peers, {settings['device']} {settings['dtype']}{check}, {machine['date']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ----- command line -----------------------------------------------------------------------------------------------
def parse_args(argv=None):
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: ViT-S and ResNet-50, few steps (~2 minutes)")
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default=None,
                        help="autocast dtype (default bf16 on CUDA, fp32 on CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, one per core); on a busy machine 1 avoids the "
                             "collapse of oversubscribed OpenMP threads")
    parser.add_argument("--compile", action="store_true",
                        help="add torch.compile rows (inductor) for SimMIM and A2MIM on the first --vit-sizes encoder "
                             "and both ResNet-50 steps, with compiled / eager and compiled-pair ratios")
    parser.add_argument("--tiny", action="store_true",
                        help="micro presets (vit-micro, resnet-micro) under the same names, few steps: checks that "
                             "the benchmark runs (a few minutes), measures nothing")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 on CPU (4 with --quick), 64 on CUDA")
    parser.add_argument("--vit-sizes", nargs="+", choices=sorted(VIT_SIZES), default=None,
                        help="ViT sizes to compare (default: s b; s with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="warmup steps per repeat (default 2, 1 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per repeat (default 5, 2 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 3, 2 with --quick)")
    parser.add_argument("--pipeline-images", type=int, default=None,
                        help="synthetic images per format streamed through the input pipeline (default 512, 2048 on "
                             "CUDA, 128 with --quick)")
    parser.add_argument("--num-workers", type=int, nargs="*", default=None,
                        help="data loader worker counts measured besides run_pretraining.py's default "
                             "(default: min(8, cores))")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak memory subprocesses")
    parser.add_argument("--skip-pipeline", action="store_true", help="skip the input pipeline measurement")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny and args.vit_sizes not in (None, ["s"]):
        parser.error("--tiny times the ViT-S contenders only (at vit-micro size): drop --vit-sizes or pass s")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    small = args.quick or args.tiny
    defaults = {
        "dtype": "bf16" if args.device.startswith("cuda") else "fp32",
        "batch_size": (64 if args.device.startswith("cuda") else 4 if small else 8),
        "vit_sizes": ["s"] if small else ["s", "b"],
        "warmup": 1 if small else (5 if args.device.startswith("cuda") else 2),
        "steps": 2 if small else (20 if args.device.startswith("cuda") else 5),
        "repeats": 2 if small else 3,
        "pipeline_images": 32 if args.tiny else 128 if args.quick else 2048 if args.device.startswith("cuda") else 512,
        "num_workers": [min(8, os.cpu_count())],
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe, args)))
        return
    if args.compile:
        # A fresh inductor cache, so that the first steps time a cold compile (a user's first run), not a cache hit
        # of an earlier run; the memory probes (subprocesses with this environment) then reuse it.
        cache = tempfile.mkdtemp(prefix="speed-inductor-")
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    machine = machine_info()
    print(json.dumps(machine), flush=True)
    listed = contenders(args.vit_sizes, compile_rows=args.compile, tiny=args.tiny)
    names = [contender.name for contender in listed]
    descriptions = {contender.name: contender.description for contender in listed}
    print("Training-step throughput:", flush=True)
    throughput, first_steps = measure_throughput(listed, args)
    compared = comparisons(args.vit_sizes, compile_rows=args.compile)
    summarize(throughput, compared)
    memory = {}
    if not args.skip_memory:
        print("Peak memory (fresh process per contender):", flush=True)
        memory = measure_memory(names, args)
    pipeline = None
    if not args.skip_pipeline:
        print("Input pipeline:", flush=True)
        consumption = {
            name: statistics.median(values) for name, values in throughput.items() if name.startswith("a2mim")
        }
        pipeline = measure_pipeline(args, consumption)
    machine["load_average_end"] = os.getloadavg()[0]
    report = {
        "machine": machine,
        "settings": {key: getattr(args, key) for key in ("device", "dtype", "compile", "batch_size", "warmup", "steps",
                                                         "repeats", "vit_sizes", "quick", "tiny")},
        "command": "python benchmarks/speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "throughput": {
            name: {"description": descriptions[name], "images_per_second": values, "median": statistics.median(values),
                   "first_step_s": first_steps[name]}
            for name, values in throughput.items()
        },
        "memory_measure": next(iter(memory.values()))["measure"] if memory else "not measured",
        "memory": memory,
        "comparisons": [],
        "pipeline": pipeline,
    }
    for comparison in compared:
        entry = {**asdict(comparison), "verdict": comparison.verdict}
        if comparison.contender in memory and comparison.peer in memory:
            entry["memory_ratio"] = memory[comparison.contender]["peak_mib"] / memory[comparison.peer]["peak_mib"]
        report["comparisons"].append(entry)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.output_dir / "speed.md").write_text(markdown(report))
    plot(report, args.output_dir / "speed.png")
    print(markdown(report))
    print(f"Wrote {args.output_dir / 'speed.json'}, speed.md and speed.png")


if __name__ == "__main__":
    main()
