"""The speed benchmark's pieces that time nothing: its contenders and compiled rows, ratios, verdicts and report."""

from dataclasses import asdict
from types import SimpleNamespace

import pytest

from benchmarks.speed import TrainStep, comparisons, contenders, markdown, parse_args, summarize

COMPILED = ["simmim-vit-s-compiled", "a2mim-vit-s-compiled", "supervised-resnet-50-compiled",
            "a2mim-resnet-50-compiled"]


def test_compile_adds_a_compiled_twin_of_the_vit_pair_and_the_resnet_pair_in_their_eager_group():
    eager = contenders(["s", "b"])
    listed = contenders(["s", "b"], compile_rows=True)
    assert [c.name for c in listed] == [c.name for c in eager] + COMPILED
    by_name = {c.name: c for c in listed}
    for name in COMPILED:
        twin, row = by_name[name.removesuffix("-compiled")], by_name[name]
        assert row.compiled and not twin.compiled
        assert (row.group, row.preset, row.build) == (twin.group, twin.preset, twin.build)
        assert row.description == twin.description + ", torch.compile"
    # The first --vit-sizes encoder gets the compiled rows.
    assert [c.name for c in contenders(["b"], compile_rows=True) if c.compiled][:2] == [
        "simmim-vit-b-compiled", "a2mim-vit-b-compiled"]


def test_compiled_comparisons_take_per_repeat_ratios_and_judge_only_the_compiled_pairs():
    throughput = {
        "simmim-vit-s": [6.0, 5.0], "a2mim-vit-s": [6.0, 4.5], "a2mim-beit-s": [5.4, 4.5],
        "supervised-resnet-50": [10.0, 10.0], "a2mim-resnet-50": [9.0, 9.5],
        "simmim-vit-s-compiled": [9.0, 7.5], "a2mim-vit-s-compiled": [8.1, 7.5],
        "supervised-resnet-50-compiled": [12.0, 16.0], "a2mim-resnet-50-compiled": [9.6, 12.0],
    }
    compared = comparisons(["s"], compile_rows=True)
    summarize(throughput, compared)
    table = {c.name: c for c in compared}

    def check(name, repeat_ratios, verdict):
        assert table[name].repeat_ratios == pytest.approx(repeat_ratios)
        assert table[name].ratio == pytest.approx(sum(repeat_ratios) / 2)  # the median of two repeats
        assert table[name].verdict == verdict

    assert (table["SimMIM ViT-S compiled / eager"].contender, table["SimMIM ViT-S compiled / eager"].peer) == (
        "simmim-vit-s-compiled", "simmim-vit-s")
    check("SimMIM ViT-S compiled / eager", [1.5, 1.5], "no goal (for information)")
    check("A2MIM-ViT-S compiled / eager", [1.35, 7.5 / 4.5], "no goal (for information)")
    check("supervised ResNet-50 compiled / eager", [1.2, 1.6], "no goal (for information)")
    check("A2MIM-ResNet-50 compiled / eager", [9.6 / 9.0, 12.0 / 9.5], "no goal (for information)")
    check("A2MIM-ViT-S compiled / SimMIM compiled", [0.9, 1.0], "met")
    check("A2MIM-ResNet-50 compiled / supervised ResNet-50 compiled", [0.8, 0.75], "MISSED")
    check("A2MIM BEiT-style ViT-S / SimMIM", [0.9, 0.9], "no goal (different encoder)")
    assert [c.name for c in comparisons(["s"])] == list(table)[:3]


def test_report_lists_first_steps_and_compiled_ratios():
    compared = comparisons(["s"], compile_rows=True)
    names = {name for c in compared for name in (c.contender, c.peer)}
    throughput = {name: [4.0, 2.0] if name.endswith("-compiled") else [2.0, 2.0] for name in names}
    summarize(throughput, compared)
    report = {
        "machine": {"date": "today", "cpu": "cpu", "cores": 2, "torch_threads": 2, "torch": "2", "transformers": "5",
                    "load_average_start": 0.5, "load_average_end": 0.7},
        "settings": {"batch_size": 8, "device": "cpu", "dtype": "fp32", "compile": True, "tiny": False, "warmup": 2,
                     "steps": 5, "repeats": 2},
        "throughput": {name: {"description": name.upper(), "images_per_second": values, "median": 3.0,
                              "first_step_s": 61.34 if name.endswith("-compiled") else 1.5}
                       for name, values in throughput.items()},
        "memory_measure": "peak RSS growth",
        "memory": {"a2mim-vit-s-compiled": {"peak_mib": 900.4}},
        "comparisons": [{**asdict(c), "verdict": c.verdict} for c in compared],
    }
    lines = markdown(report).splitlines()
    assert "Rows named *-compiled call `torch.compile(model)` (inductor, default mode, static shapes), under the " \
        "same fp32 as their eager rows" in lines[2]
    assert "| contender | images/s (median) | per repeat | first step (s) | peak memory (MiB) |" in lines
    assert "| a2mim-vit-s-compiled: A2MIM-VIT-S-COMPILED | 3.00 | 4.00, 2.00 | 61.3 | 900 |" in lines
    assert "| a2mim-vit-s: A2MIM-VIT-S | 3.00 | 2.00, 2.00 | 1.5 | n/a |" in lines
    assert ("| A2MIM-ViT-S compiled / eager (torch.compile speed-up of the same training step) | **1.50** "
            "(2.00, 1.00) | - | no goal (for information) | n/a |") in lines
    assert any(line.startswith("| A2MIM-ViT-S compiled / SimMIM compiled (both compiled, same ViTConfig encoder")
               and "| **1.00** (1.00, 1.00) | >= 0.95 | met |" in line for line in lines)


def test_tiny_runs_every_contender_at_micro_size():
    args = parse_args(["--tiny", "--compile"])
    assert (args.vit_sizes, args.batch_size, args.warmup, args.steps, args.repeats) == (["s"], 4, 1, 2, 2)
    step_args = SimpleNamespace(device="cpu", batch_size=2, dtype="fp32")
    for contender in contenders(args.vit_sizes, tiny=True):  # eager: the compiled rows differ by torch.compile only
        assert contender.preset in ("vit-micro", "resnet-micro")
        train_step = TrainStep(contender, step_args)
        train_step.step()
        assert train_step.inputs["pixel_values"].shape[-1] == {"vit-micro": 32, "resnet-micro": 64}[contender.preset]


def test_tiny_refuses_other_vit_sizes(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--tiny", "--vit-sizes", "s", "b"])
    assert "--tiny times the ViT-S contenders only (at vit-micro size)" in capsys.readouterr().err
