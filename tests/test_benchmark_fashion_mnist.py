"""The Fashion-MNIST benchmark's pieces that need no training: data export, SimMIM mask adapter, result aggregation."""

import dataclasses
import gzip
import sys
import json

import numpy as np
import pytest
import torch
from datasets import load_dataset

from benchmarks.fashion_mnist_data import export_fashion_mnist
from benchmarks.fashion_mnist_report import (
    Summary,
    compare,
    headlines,
    markdown_table,
    plot,
    summarize,
    verdict,
)
from benchmarks.simmim_pretraining import PatchMaskCollator


def _write_idx(directory, prefix, images, labels):
    with gzip.open(directory / f"{prefix}-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"\0" * 16 + images.tobytes())
    with gzip.open(directory / f"{prefix}-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(b"\0" * 8 + labels.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fashion_mnist(tmp_path, monkeypatch):
    """Idx files with 50 train / 30 test images; pixel (0, 0) holds the index so that rows can be traced."""
    source = tmp_path / "idx"
    source.mkdir()
    for prefix, n in (("train", 50), ("t10k", 30)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n)
        _write_idx(source, prefix, images, np.arange(n) % 10)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(source))
    return source


def test_export_writes_unlabelled_pretraining_subset_and_balanced_test(fake_fashion_mnist, tmp_path):
    paths = export_fashion_mnist(tmp_path / "cache", pretrain_images=20, test_per_class=2)
    labelled = load_dataset(str(paths["labelled"]))
    train, test = labelled["train"], labelled["test"]
    pretrain = load_dataset("parquet", data_files=str(paths["pretrain"]), split="train")
    assert len(train) == 50 and train.features["label"].names[0] == "T-shirt/top"
    assert pretrain.column_names == ["image"] and len(pretrain) == 20
    pretrain_ids = sorted(np.asarray(image)[0, 0] for image in pretrain["image"])
    assert len(set(pretrain_ids)) == 20 and max(pretrain_ids) < 50  # distinct training images, no labels
    assert len(test) == 20 and sorted(test["label"]) == sorted(list(range(10)) * 2)
    assert np.asarray(train[7]["image"]).shape == (28, 28) and np.asarray(train[7]["image"])[0, 0] == 7
    assert export_fashion_mnist(tmp_path / "cache", 20, 2) == paths  # reused, not rewritten


def test_export_without_the_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        export_fashion_mnist(tmp_path / "cache", 10, None)


def test_patch_mask_collator_upsamples_blocks_to_the_vit_patch_grid():
    block_mask = torch.tensor([[[True, False], [False, True]]])  # 2x2 blocks of 8 px on a 16 px image

    def collator(examples):
        return {"pixel_values": torch.zeros(1, 3, 16, 16), "bool_masked_pos": block_mask}

    batch = PatchMaskCollator(collator, image_size=16, patch_size=4)([{}])
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    assert batch["bool_masked_pos"].dtype == torch.bool
    assert torch.equal(batch["bool_masked_pos"], expected.flatten()[None])


def test_summary_is_percent_mean_and_sample_std():
    summary = Summary.of([0.80, 0.82, 0.84])
    assert summary.mean == pytest.approx(82.0) and summary.std == pytest.approx(2.0) and summary.n == 3
    assert str(summary) == "82.0 ± 2.0" and summary.cell(3) == "82.0 ± 2.0"
    assert summary.cell(4) == "82.0 ± 2.0 (n=3)"
    assert Summary.of([0.5]).std == 0.0


def test_verdict_needs_a_difference_beyond_two_standard_errors():
    reference = Summary(80.0, 1.0, 3)
    assert verdict(Summary(82.0, 1.0, 3), reference) == "better"  # 2.0 > 2 * 0.816
    assert verdict(Summary(81.0, 1.0, 3), reference) == "no clear difference"
    assert verdict(Summary(77.0, 1.0, 3), reference) == "worse"
    assert verdict(Summary(80.0, 0.0, 3), Summary(80.0, 0.0, 3)) == "no clear difference"


def test_table_bolds_the_best_and_comparisons_report_losses_too(tmp_path):
    records = [
        {"method": method, "protocol": "p", "seed": seed, "accuracy": accuracy}
        for method, accuracies in (("A", [0.70, 0.72, 0.74]), ("B", [0.80, 0.80, 0.80]))
        for seed, accuracy in enumerate(accuracies)
    ]
    summaries = summarize(records)
    table = markdown_table(summaries, ["A", "B", "C"], ["p"], {"A": "a", "B": "b", "C": "c"})
    assert "| A | a | 72.0 ± 2.0 |" in table and "| B | b | **80.0 ± 0.0** |" in table and "| C | c | — |" in table
    rows = compare(summaries, [("A", "B"), ("C", "B")], ["p"])
    assert rows == [{"candidate": "A", "reference": "B", "protocol": "p",
                     "difference": pytest.approx(-8.0), "verdict": "worse"}]
    assert headlines(rows + [{**rows[0], "protocol": "q", "verdict": "no clear difference"}]) == [
        "- A vs B: better in 0 of 2; worse in p; no clear difference in q."
    ]
    plot(summaries, ["A", "B"], ["p"], tmp_path / "plot.png", "title")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(rows)


def _python_run(tmp_path, key, code):
    from benchmarks.fashion_mnist import Run

    def read_result(output_dir):
        return {"text": (output_dir / "out.txt").read_text()}

    output_dir = tmp_path / key
    command = [sys.executable, "-c", f"import pathlib; {code}; pathlib.Path({str(output_dir)!r}, 'out.txt')"
                                     f".write_text(pathlib.Path({str(tmp_path)!r}, 'log').read_text())"]
    return Run(key, command, output_dir, read_result)


def test_runs_respect_dependencies_and_are_reused_when_the_command_is_unchanged(tmp_path):
    from benchmarks.fashion_mnist import run_all

    log = tmp_path / "log"
    log.write_text("")
    append = "open({!r}, 'a').write({!r})"
    first = _python_run(tmp_path, "first", "import time; time.sleep(0.5); " + append.format(str(log), "a"))
    second = _python_run(tmp_path, "second", append.format(str(log), "b"))
    results = run_all([first, second], jobs=2, threads=1, after={"second": "first"})
    assert [r["text"] for r in results] == ["a", "ab"]  # second waited for first despite a free worker
    assert results[0]["command"] == first.command and results[0]["seconds"] >= 0
    assert run_all([first], jobs=1, threads=1, after={})[0]["text"] == "a"  # reused: not run again
    assert log.read_text() == "ab"

    # A rerun (changed command) of `first` removes the cached runs that used its output.
    first.invalidates = second.output_dir
    first.command = first.command + ["--changed"]
    run_all([first], jobs=1, threads=1, after={})
    assert log.read_text() == "aba" and not second.output_dir.exists()


def test_runs_made_by_other_code_are_not_reused(tmp_path):
    from benchmarks.fashion_mnist import code_fingerprint, run_all

    log = tmp_path / "log"
    log.write_text("")
    run = _python_run(tmp_path, "run", "open({!r}, 'a').write('x')".format(str(log)))
    assert run.code == code_fingerprint() and len(run.code) == 16
    assert run_all([run], jobs=1, threads=1, after={})[0]["code"] == run.code
    run_all([run], jobs=1, threads=1, after={})
    assert log.read_text() == "x"  # same command, same code: reused
    run.code = "edited-package"
    run_all([run], jobs=1, threads=1, after={})
    assert log.read_text() == "xx"  # same command, other code: run again


def test_failed_runs_are_listed_with_their_log_after_the_others_finish(tmp_path):
    from benchmarks.fashion_mnist import run_all

    (tmp_path / "log").write_text("")
    good = _python_run(tmp_path, "good", "pass")
    bad = _python_run(tmp_path, "bad", "raise SystemExit('broken input')")
    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed:\nbad failed \(exit 1\)(.|\n)*broken input"):
        run_all([bad, good], jobs=1, threads=1, after={})
    assert (tmp_path / "good" / "benchmark_run.json").is_file()


def test_pretraining_seed_sets_the_initial_weights_and_the_pretraining_seed(tmp_path):
    from safetensors.torch import load_file

    from benchmarks.fashion_mnist import BUDGETS, METHODS, pretraining_run

    a2mim = next(m for m in METHODS if m.name == "ViT A2MIM")
    data = {"pretrain": tmp_path / "pretrain.parquet"}
    runs = {seed: pretraining_run(a2mim, dataclasses.replace(BUDGETS["quick"], pretrain_seed=seed), data,
                                  tmp_path / f"seed{seed}") for seed in (0, 1)}
    for seed, run in runs.items():
        assert run.command[run.command.index("--seed") + 1] == str(seed)
    weights = [load_file(tmp_path / f"seed{seed}" / "init" / "vit" / "encoder" / "model.safetensors") for seed in (0, 1)]
    assert weights[0].keys() == weights[1].keys()
    assert not all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
