"""The Fashion-MNIST benchmark's pieces that need no training: data export, SimMIM mask adapter, result aggregation."""

import gzip
import json
import shutil
import sys

import numpy as np
import pytest
import torch
from datasets import load_dataset

from benchmarks.fashion_mnist_data import export_fashion_mnist
from benchmarks.fashion_mnist_report import (
    Summary,
    bar_label,
    compare,
    convergence_curves,
    convergence_sentence,
    convergence_verdicts,
    headlines,
    markdown_budget_table,
    markdown_convergence,
    markdown_table,
    plot,
    plot_convergence,
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
    assert Summary.of([0.5]).std == 0.0 and str(Summary.of([0.5])) == "50.0"  # one seed: no "± 0.0" spread


def test_verdict_needs_a_difference_beyond_two_standard_errors():
    reference = Summary(80.0, 1.0, 3)
    assert verdict(Summary(82.0, 1.0, 3), reference) == "better"  # 2.0 > 2 * 0.816
    assert verdict(Summary(81.0, 1.0, 3), reference) == "no clear difference"
    assert verdict(Summary(77.0, 1.0, 3), reference) == "worse"
    assert verdict(Summary(80.0, 0.0, 3), Summary(80.0, 0.0, 3)) == "no clear difference"
    assert verdict(Summary(90.0, 0.0, 1), reference) == "too few seeds"  # one seed has no spread to judge by


def test_table_bolds_the_best_and_comparisons_report_losses_too(tmp_path):
    records = [
        {"method": method, "protocol": "p", "seed": seed, "accuracy": accuracy}
        for method, accuracies in (("A", [0.70, 0.72, 0.74]), ("B", [0.80, 0.80, 0.80]))
        for seed, accuracy in enumerate(accuracies)
    ]
    summaries = summarize(records)
    table = markdown_table(summaries, ["A", "B", "C"], ["p"], {"A": "a", "B": "b", "C": "c"})
    assert "| A | a | 72.0 ± 2.0 |" in table and "| B | b | **80.0 ± 0.0** |" in table and "| C | c | — |" in table
    # grouped (e.g. by encoder family): the best of each group is bold, and a group with no finished run has none
    grouped = markdown_table(summaries, ["A", "B", "C"], ["p"], {"A": "a", "B": "b", "C": "c"},
                             groups={"A": "x", "B": "y", "C": "z"})
    assert "| A | a | **72.0 ± 2.0** |" in grouped and "| B | b | **80.0 ± 0.0** |" in grouped
    assert "| C | c | — |" in grouped
    rows = compare(records, [("A", "B"), ("C", "B")], ["p"])
    assert rows == [{"candidate": "A", "reference": "B", "protocol": "p",
                     "difference": pytest.approx(-8.0), "verdict": "worse", "seeds_better": "0/3"}]
    assert headlines(rows + [{**rows[0], "protocol": "q", "verdict": "no clear difference"}]) == [
        "- A vs B: better in 0 of 2 protocols; worse in p; no clear difference in q."
    ]
    assert headlines(rows) == ["- A vs B, p: worse."]  # one protocol: its verdict
    plot(summaries, ["A", "B"], ["p"], tmp_path / "plot.png", "title")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A method with fewer seeds than the others says so in the legend (its single-seed bars draw no error bar)
    assert [bar_label(m, seeds, 3) for m, seeds in (("A", [3, 3]), ("B", [3, 1]), ("C", []))] == ["A", "B (n=1)", "C"]
    plot({**summaries, "D": summarize(_seed_records("D", "p", [0.7]))["D"]}, ["A", "D"], ["p"], tmp_path / "d.png", "t")
    assert (tmp_path / "d.png").is_file()
    json.dumps(rows)


def _seed_records(method, protocol, accuracies):
    return [{"method": method, "protocol": protocol, "seed": seed, "accuracy": a} for seed, a in enumerate(accuracies)]


def test_verdict_is_over_pretraining_seeds_and_wins_pair_runs_of_one_seed():
    # The candidate wins on every seed by 0.5 point, but the seeds spread by 5 points: no clear difference.
    records = (_seed_records("A2MIM", "p", [0.705, 0.755, 0.805]) + _seed_records("SimMIM", "p", [0.70, 0.75, 0.80])
               + _seed_records("A2MIM", "q", [0.90, 0.91, 0.92]) + _seed_records("SimMIM", "q", [0.80, 0.81]))
    rows = compare(records, [("A2MIM", "SimMIM")], ["p", "q"])
    assert [(r["protocol"], r["verdict"], r["seeds_better"]) for r in rows] == [
        ("p", "no clear difference", "3/3"), ("q", "better", "2/2")]
    assert rows[0]["difference"] == pytest.approx(0.5)
    assert rows[1]["difference"] == pytest.approx(10.5)  # 91.0 over 3 seeds vs 80.5 over the 2 that finished


def test_budget_table_lists_the_headline_pair_per_pretraining_budget(tmp_path):
    records = (_seed_records("A", "p", [0.70, 0.72, 0.74]) + _seed_records("S", "p", [0.70, 0.70, 0.70])
               + _seed_records("A (6 ep)", "p", [0.80, 0.81, 0.82]) + _seed_records("S (6 ep)", "p", [0.70, 0.71, 0.72]))
    pairs = [(2, "A", "S"), (6, "A (6 ep)", "S (6 ep)")]
    summaries = summarize(records)
    comparisons = compare(records, [(a, s) for _, a, s in pairs], ["p"])
    assert markdown_budget_table(summaries, comparisons, pairs, ["p"]).splitlines()[2:] == [
        "| 2 | p | A: 72.0 ± 2.0 | S: 70.0 ± 0.0 | +2.0 | no clear difference |",
        "| 6 | p | A (6 ep): 81.0 ± 1.0 | S (6 ep): 71.0 ± 1.0 | +10.0 | better |",
    ]
    empty = markdown_budget_table(summaries, [], pairs, ["p"])
    assert empty == "(No pair has finished at any pretraining budget yet.)"
    plot(summaries, ["A", "S", "A (6 ep)", "S (6 ep)"], ["p"], tmp_path / "plot.png", "title", pairs)
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_convergence_verdict_says_whether_a_longer_budget_still_gains(tmp_path):
    def curve(method, protocol, by_epochs):
        return [{**r, "epochs": e} for e, accs in by_epochs.items() for r in _seed_records(method, protocol, accs)]

    records = (curve("ViT random init", "100 labels/class",
                     {10: [0.60, 0.61, 0.62], 40: [0.74, 0.75, 0.76], 80: [0.745, 0.755, 0.765]})
               + curve("ViT random init", "1000 labels/class", {1: [0.70, 0.71, 0.72], 5: [0.80, 0.80, 0.81]})
               + curve("ResNet random init", "1000 labels/class", {1: [0.85, 0.86, 0.87]}))
    chosen = {("ViT random init", "100 labels/class"): 40, ("ViT random init", "1000 labels/class"): 1,
              ("ResNet random init", "1000 labels/class"): 1}
    curves = convergence_curves(records)
    assert list(curves["ViT random init", "100 labels/class"]) == [10, 40, 80]
    sentences = [convergence_sentence(row) for row in convergence_verdicts(curves, chosen)]
    assert sentences == [
        "- ViT random init, 100 labels/class: 40 epochs reach 75.0 %; the best longer budget (80 epochs) adds +0.5 "
        "points, within the seed spread: converged.",
        "- ViT random init, 1000 labels/class: 1 epochs reach 71.0 %; the best longer budget (5 epochs) adds +9.3 "
        "points, beyond the seed spread: NOT converged; raise this protocol's epochs.",
        "- ResNet random init, 1000 labels/class: the curve lacks 1 epochs or any longer budget; convergence not "
        "shown.",
    ]
    table = markdown_convergence(curves, chosen, expected_n=3)
    assert table.splitlines()[0] == "| Method | Protocol | 1 ep | 5 ep | 10 ep | 40 ep | 80 ep |"
    assert "| ViT random init | 100 labels/class | — | — | 61.0 ± 1.0 | **75.0 ± 1.0** | 75.5 ± 1.0 |" in table
    assert markdown_convergence({}, chosen) == "(No run of the curve has finished yet.)"

    # A point of one seed borrows the chosen budget's spread; a chosen budget of one seed cannot be judged.
    one_seed = (curve("ViT random init", "1000 labels/class", {5: [0.80, 0.81, 0.82]})
                + curve("ViT random init", "1000 labels/class", {10: [0.822]})
                + curve("ResNet random init", "1000 labels/class", {5: [0.80, 0.81, 0.82]})
                + curve("ResNet random init", "1000 labels/class", {10: [0.84]})
                + curve("ConvNeXt random init", "1000 labels/class", {5: [0.80]})
                + curve("ConvNeXt random init", "1000 labels/class", {10: [0.84]}))
    rows = convergence_verdicts(convergence_curves(one_seed), {(f"{family} random init", "1000 labels/class"): 5
                                                               for family in ("ViT", "ResNet", "ConvNeXt")})
    assert [row["converged"] for row in rows] == [True, False, None]  # 1.2 < 2 * 1.15 < 3.0 points
    assert convergence_sentence(rows[2]) == (
        "- ConvNeXt random init, 1000 labels/class: 5 epochs reach 80.0 %; the best longer budget (10 epochs) adds "
        "+4.0 points, but too few seeds have finished to compare that with the seed spread.")
    plot_convergence(curves, chosen, tmp_path / "curve.png", "title")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    second.source = first  # as a fine-tuning run from a pretraining run's checkpoint
    results = run_all([first, second], jobs=2, threads=1, after={"second": "first"})
    assert [r["text"] for r in results] == ["a", "ab"]  # second waited for first despite a free worker
    assert results[0]["command"] == ["python", *first.command[1:]] and results[0]["seconds"] >= 0
    assert run_all([first], jobs=1, threads=1, after={})[0]["text"] == "a"  # reused: not run again
    assert log.read_text() == "ab"

    # A rerun (changed command) of `first` is another source: `second`, made from the earlier one, runs again.
    made_from_first = second.identity
    first.command = first.command + ["--changed"]
    results = run_all([first, second], jobs=1, threads=1, after={"second": "first"})
    assert log.read_text() == "abab" and results[1]["code"] == second.identity != made_from_first


def test_the_ledger_keeps_finished_runs_for_a_fresh_cache_and_reruns_what_a_missing_run_needs(tmp_path):
    from types import SimpleNamespace

    from benchmarks.fashion_mnist import Ledger, Plan, Run, execute

    log = tmp_path / "log"
    log.write_text("")
    ledger = Ledger(tmp_path / "ledger", tmp_path / "cache")
    after = {"second": "first", "third": "first"}

    def run(output_dir, letter):
        code = (f"import pathlib; open({str(log)!r}, 'a').write({letter!r}); "
                f"pathlib.Path({str(output_dir)!r}, 'out.txt').write_text({letter!r})")
        return Run(output_dir.name, [sys.executable, "-c", code], output_dir,
                   lambda folder: {"text": (folder / "out.txt").read_text()}, ledger=ledger)

    def plan():
        first = run(tmp_path / "cache" / "pretrain" / "first", "a")
        dependents = [run(tmp_path / "cache" / "evaluate" / name, letter) for name, letter in (("second", "b"),
                                                                                             ("third", "c"))]
        for dependent in dependents:
            dependent.source = first  # as a pretraining run's evaluations
        made = Plan([first, *dependents], [])
        assert made.after == after  # derived from the runs' sources
        return made

    def execute_plan(cached_only=False):
        return execute(plan(), SimpleNamespace(cached_only=cached_only, jobs=1, threads=1))

    finished, missing, _ = execute_plan()
    assert not missing and log.read_text() == "abc" and finished["second"]["machine"]
    (kept,) = (tmp_path / "ledger" / "evaluate" / "second").glob("benchmark_run-*.json")
    assert json.loads(kept.read_text()) == finished["second"]  # at its cache folder's place

    shutil.rmtree(tmp_path / "cache")  # a fresh machine: its cache is empty, the ledger is committed
    for cached_only in (True, False):
        assert execute_plan(cached_only)[0] == finished and log.read_text() == "abc"  # from the ledger, nothing ran

    # `second` is gone and must run: it needs `first`'s output, which only another machine had, so `first` runs
    # again. That reproduces the ledger's run (same command, same code): `third`, made from it, stays.
    kept.unlink()
    again, missing, _ = execute_plan()
    assert log.read_text() == "abcab" and not missing and again["third"] == finished["third"] and kept.is_file()

    # A changed command of `first` is another run: what used the earlier one runs again, and the ledger keeps the
    # earlier records beside the new ones (the provenance of an earlier report).
    changed = plan()
    changed.runs[0].command.append("--changed")
    execute(changed, SimpleNamespace(cached_only=False, jobs=1, threads=1))
    assert log.read_text() == "abcababc" and kept.is_file() and len(list(kept.parent.iterdir())) == 2
    assert len(list((tmp_path / "ledger" / "pretrain" / "first").iterdir())) == 2  # both commands' records
    assert execute_plan(cached_only=True)[0] == again  # the earlier generation is still reported from the ledger


def test_a_runs_code_is_what_its_script_imports(tmp_path, monkeypatch):
    import benchmarks.fashion_mnist as bench

    files = {"script.py": "from pkg.sub import c\n", "pkg/__init__.py": "from .a import f\n",
             "pkg/a.py": "def f():\n    import pkg.b\n", "pkg/b.py": "", "pkg/sub/__init__.py": "",
             "pkg/sub/c.py": "from .. import a\nimport json\n", "pkg/unused.py": ""}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(bench, "REPO", tmp_path)
    bench.script_files.cache_clear()
    bench.code_fingerprint.cache_clear()
    try:  # the fake repository's entries leave the caches below
        # Relative and absolute imports, an import inside a function, each package's __init__.py; not the standard
        # library, not what nobody imports
        assert bench.script_files("script.py") == ("pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/sub/__init__.py",
                                                   "pkg/sub/c.py", "script.py")
        before = bench.code_fingerprint(("script.py",))
        (tmp_path / "pkg" / "unused.py").write_text("x = 1\n")
        bench.code_fingerprint.cache_clear()
        assert bench.code_fingerprint(("script.py",)) == before  # an edit the script does not import keeps its runs
        (tmp_path / "pkg" / "b.py").write_text("x = 1\n")
        bench.code_fingerprint.cache_clear()
        assert bench.code_fingerprint(("script.py",)) != before
    finally:
        bench.script_files.cache_clear()
        bench.code_fingerprint.cache_clear()
    monkeypatch.undo()
    # The dense scripts: a detection edit keeps the segmentation runs and the pretraining runs, and the other way round
    segmentation, detection, pretraining = map(bench.script_files, ("run_semantic_segmentation.py",
                                                                     "run_object_detection.py", "run_pretraining.py"))
    assert "modeling_a2mim/segmentation/models.py" in segmentation and "modeling_a2mim/detection/models.py" in detection
    assert not [f for f in segmentation + pretraining if f.startswith("modeling_a2mim/detection/")]
    assert not [f for f in detection + pretraining if f.startswith("modeling_a2mim/segmentation/")]
    assert {"modeling_a2mim/__init__.py", "modeling_a2mim/modeling_a2mim.py", "modeling_a2mim/transfer.py"} <= set(
        segmentation) & set(detection)


def test_runs_made_by_other_code_are_not_reused(tmp_path):
    from benchmarks.fashion_mnist import code_fingerprint, run_all

    log = tmp_path / "log"
    log.write_text("")
    run = _python_run(tmp_path, "run", "open({!r}, 'a').write('x')".format(str(log)))
    assert run.code == code_fingerprint(("-c",)) and len(run.code) == 16  # `-c`: the versions alone
    assert run_all([run], jobs=1, threads=1, after={})[0]["code"] == run.code
    run_all([run], jobs=1, threads=1, after={})
    assert log.read_text() == "x"  # same command, same code: reused
    run.code = "edited-package"
    run_all([run], jobs=1, threads=1, after={})
    assert log.read_text() == "xx"  # same command, other code: run again


def test_a_folder_left_by_other_code_is_emptied_before_the_rerun(tmp_path):
    from benchmarks.fashion_mnist import run_all

    log = tmp_path / "log"
    log.write_text("")
    run = _python_run(tmp_path, "run", "open({!r}, 'a').write('x')".format(str(log)))
    run_all([run], jobs=1, threads=1, after={})
    (run.output_dir / "all_results.json").write_text("{}")  # what a script takes for its own finished run
    run.code = "edited-package"
    assert run_all([run], jobs=1, threads=1, after={})[0]["code"] == "edited-package"
    assert log.read_text() == "xx" and not (run.output_dir / "all_results.json").exists()

    # An interrupted run (started, never finished) of other code is emptied too; one of this code is resumed.
    record = json.loads((run.output_dir / "benchmark_run.json").read_text())
    for code, kept in (("older-package", False), ("edited-package", True)):
        (run.output_dir / "benchmark_run.json").write_text(json.dumps(
            {"key": record["key"], "command": record["command"], "code": code}))
        (run.output_dir / "checkpoint-5").mkdir()
        run_all([run], jobs=1, threads=1, after={})
        assert (run.output_dir / "checkpoint-5").is_dir() == kept


def test_recorded_commands_name_repository_relative_paths_and_python(tmp_path):
    from benchmarks.fashion_mnist import (
        REPO,
        display,
        portable,
        read_pretraining_result,
        relative,
        run_all,
        shown_command,
    )

    command = [sys.executable, "run_finetuning.py", "--model_name_or_path", str(REPO / "benchmarks/cache/x"),
               "--data_files=" + str(REPO / "data.parquet"), "--output_dir", str(tmp_path / "out")]
    assert portable(command) == ["python", "run_finetuning.py", "--model_name_or_path", "benchmarks/cache/x",
                                 "--data_files=data.parquet", "--output_dir", str(tmp_path / "out")]
    assert display(command).startswith("python run_finetuning.py --model_name_or_path benchmarks/cache/x ")
    assert shown_command(["--cache_dir", str(REPO / "benchmarks/other"), "--note", "busy", "--cached_only"]) == (
        "python benchmarks/fashion_mnist.py --cache_dir benchmarks/other")

    assert relative(REPO / "benchmarks" / "cache" / "full") == "benchmarks/cache/full"
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "all_results.json").write_text('{"train_loss": 0.5}')
    assert read_pretraining_result(tmp_path) == {"checkpoint": str(tmp_path / "checkpoint"), "train_loss": 0.5}

    (tmp_path / "log").write_text("")
    run = _python_run(tmp_path, "run", "pass")
    run.command = run.command + [str(REPO / "README.md")]
    result = run_all([run], jobs=1, threads=1, after={})[0]
    saved = json.loads((run.output_dir / "benchmark_run.json").read_text())
    assert saved["command"] == result["command"] == ["python", *run.command[1:-1], "README.md"]
    assert sys.executable not in json.dumps(saved) and str(REPO) not in json.dumps(saved)
    assert run.cached_result() == saved  # the relative record is what the next invocation reuses


def test_failed_runs_are_listed_with_their_log_after_the_others_finish(tmp_path):
    from benchmarks.fashion_mnist import run_all

    (tmp_path / "log").write_text("")
    good = _python_run(tmp_path, "good", "pass")
    bad = _python_run(tmp_path, "bad", "raise SystemExit('broken input')")
    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed:\nbad failed \(exit 1\)(.|\n)*broken input"):
        run_all([bad, good], jobs=1, threads=1, after={})
    assert (tmp_path / "good" / "benchmark_run.json").is_file()


def test_each_seed_has_its_own_initial_encoder_shared_by_the_family(tmp_path):
    from safetensors.torch import load_file

    from benchmarks.fashion_mnist import METHODS, encoder_dir, write_initial_encoders

    resnet = [m for m in METHODS if m.family == "resnet"]
    write_initial_encoders(resnet[::-1], (0, 1), tmp_path)  # the first method is an ablation: its overrides are ignored
    weights = [load_file(encoder_dir("resnet", seed, tmp_path) / "model.safetensors") for seed in (0, 1)]
    assert weights[0].keys() == weights[1].keys()
    assert not all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert not (tmp_path / "seed0" / "init" / "vit").exists()


def test_every_family_has_its_comparison_roles_and_valid_configs():
    from benchmarks.fashion_mnist import A2MIM, METHODS, RANDOM_INIT, SIMMIM

    for family in ("vit", "resnet", "convnext"):
        roles = [m.role for m in METHODS if m.family == family]
        assert roles.count(RANDOM_INIT) == roles.count(SIMMIM) == roles.count(A2MIM) == 1
    configs = {m.name: m.config() for m in METHODS}  # every override is a valid A2MIMConfig
    a2mim = configs["ResNet A2MIM"]
    assert (a2mim.mask_layer, a2mim.mask_token_mode, a2mim.mean_fill, a2mim.spatial_loss,
            a2mim.frequency_loss_weight) == (3, "residual", True, "focal_l1", 0.5)
    simmim = configs["ResNet SimMIM-style"]
    assert (simmim.mask_layer, simmim.mask_token_mode, simmim.mask_gamma_init, simmim.mean_fill, simmim.spatial_loss,
            simmim.frequency_loss_weight) == (0, "replace", None, False, "l1", 0.0)
    # The stem's output has stride 4, so the 16 px mask blocks of the 64 px ResNet are representable there.
    assert simmim.mask_layer_stride == 4 and simmim.mask_patch_size % 4 == 0 and simmim.image_size == 64
    assert configs["ResNet A2MIM, token at stem"].mask_layer == 0
    assert configs["ResNet A2MIM w/o mean fill"].mask_token_mode == "replace"
    assert configs["ResNet A2MIM w/o freq loss"].frequency_loss_weight == 0.0
    assert configs["ViT A2MIM"].backbone_config.hidden_size == 96 and configs["ViT A2MIM"].mask_patch_size == 8
    convnext, convnext_simmim = configs["ConvNeXt A2MIM"], configs["ConvNeXt SimMIM-style"]
    assert (convnext.backbone_config.model_type, convnext.mask_layer, convnext.mask_layer_stride, convnext.mean_fill,
            convnext.spatial_loss) == ("convnext", 2, 16, True, "focal_l1")
    assert (convnext_simmim.mask_layer, convnext_simmim.mask_layer_stride, convnext_simmim.mask_token_mode,
            convnext_simmim.mean_fill, convnext_simmim.spatial_loss) == (0, 4, "replace", False, "l1")


def test_method_roles_and_entry_points_are_checked():
    from benchmarks.fashion_mnist import Method

    with pytest.raises(ValueError, match="^Method 'x': role 'baseline' is not one of 'random init', 'SimMIM'"):
        Method("x", "", "vit", "baseline")
    with pytest.raises(ValueError, match="^Method 'x': a random-init method has no entry_point, every other one"):
        Method("x", "", "vit", "A2MIM")


def test_rows_comparisons_and_budget_pairs_follow_from_the_methods():
    from benchmarks.fashion_mnist import BUDGETS, METHODS, budget_pairs, comparison_pairs, table_rows

    rows = table_rows(METHODS, BUDGETS["full"])
    assert [r.name for r in rows if r.method.family == "vit"] == [
        "ViT random init", "ViT SimMIM", "ViT A2MIM", "ViT SimMIM (3 ep)", "ViT A2MIM (3 ep)"]
    assert {r.name: r.epochs for r in rows}["ViT A2MIM (3 ep)"] == 3
    assert len([r for r in rows if r.method.family == "resnet"]) == 6
    assert [r.name for r in rows if r.method.family == "convnext"] == [
        "ConvNeXt random init", "ConvNeXt SimMIM-style", "ConvNeXt A2MIM"]
    pairs = comparison_pairs(rows)
    assert pairs[:3] == [("ViT A2MIM", "ViT SimMIM"), ("ViT A2MIM", "ViT random init"),
                         ("ViT SimMIM", "ViT random init")]
    assert ("ViT A2MIM (3 ep)", "ViT SimMIM (3 ep)") in pairs
    assert ("ResNet A2MIM", "ResNet SimMIM-style") in pairs and ("ResNet SimMIM-style", "ResNet random init") in pairs
    assert [p for p in pairs if p[1] == "ResNet A2MIM"] == [
        ("ResNet A2MIM, token at stem", "ResNet A2MIM"), ("ResNet A2MIM w/o mean fill", "ResNet A2MIM"),
        ("ResNet A2MIM w/o freq loss", "ResNet A2MIM")]
    assert ("ConvNeXt A2MIM", "ConvNeXt SimMIM-style") in pairs and ("ConvNeXt A2MIM", "ConvNeXt random init") in pairs
    assert budget_pairs(rows) == [(1, "ViT A2MIM", "ViT SimMIM"), (3, "ViT A2MIM (3 ep)", "ViT SimMIM (3 ep)")]
    assert [r.name for r in table_rows(METHODS, BUDGETS["quick"])][3:5] == ["ResNet random init", "ResNet SimMIM-style"]


def _flag(command, name):
    return command[command.index(name) + 1]


def test_plan_expands_every_row_into_seeds_and_budgets_with_unique_cache_folders(tmp_path):
    from benchmarks.fashion_mnist import (
        BUDGETS,
        METHODS,
        convergence_protocols,
        encoder_dir,
        plan_runs,
        table_rows,
    )

    budget = BUDGETS["full"]
    rows = table_rows(METHODS, budget)
    data = {"pretrain": tmp_path / "pretrain.parquet", "labelled": tmp_path / "labelled"}
    plan = plan_runs(rows, budget.protocols, budget, data, tmp_path)
    # 14 rows x (100/class, probe), 3 seeds each; 11 of the rows are pretrained
    assert len(plan.pretraining) == 11 * 3 and len(plan.evaluations) == 14 * 2 * 3
    assert len({run.key for run in plan.runs}) == len({run.output_dir for run in plan.runs}) == len(plan.runs)
    pretraining = {run.key: run for run in plan.pretraining}
    a2mim_long = pretraining["pretrain ViT A2MIM (3 ep) seed 2"]
    assert (_flag(a2mim_long.command, "--max_steps"), _flag(a2mim_long.command, "--seed")) == ("1406", "2")
    assert _flag(a2mim_long.command, "--model_name_or_path") == str(encoder_dir("vit", 2, tmp_path))
    assert _flag(pretraining["pretrain ViT SimMIM seed 0"].command, "--max_steps") == "469"
    simmim_cnn = pretraining["pretrain ResNet SimMIM-style seed 1"].command
    assert simmim_cnn[1] == "run_pretraining.py" and _flag(simmim_cnn, "--model_preset") == "resnet-micro"
    assert _flag(simmim_cnn, "--config_overrides") == (
        'mask_layer=0,mask_token_mode="replace",mask_gamma_init=null,mean_fill=false,spatial_loss="l1",'
        "frequency_loss_weight=0.0,frequency_unmask_weight=0.0")
    assert pretraining["pretrain ViT SimMIM seed 0"].command[1] == "benchmarks/simmim_pretraining.py"

    evaluations = {run.key: run for run in plan.evaluations}
    finetune = evaluations["100 labels/class 320 ep ViT A2MIM (3 ep) seed 2"]
    assert _flag(finetune.command, "--model_name_or_path") == str(a2mim_long.output_dir / "checkpoint")
    assert plan.after[finetune.key] == a2mim_long.key and finetune.record == {
        "method": "ViT A2MIM (3 ep)", "seed": 2, "epochs": 320}
    assert [_flag(finetune.command, f) for f in ("--seed", "--learning_rate", "--min_crop_scale")] == ["2", "0.0005",
                                                                                                        "1.0"]
    assert finetune.source is a2mim_long  # its identity covers that pretraining's command and code
    random_init = evaluations["100 labels/class 320 ep ViT random init seed 1"]
    assert _flag(random_init.command, "--model_name_or_path") == str(encoder_dir("vit", 1, tmp_path))
    assert random_init.key not in plan.after

    # Start order: a group's pretraining before its evaluations, every run after the one it waits for; the main rows
    # first (the CNNs before the costlier ViT), then the ablations, then the longer budget.
    position = {run.key: index for index, run in enumerate(plan.runs)}
    assert all(position[before] < position[key] for key, before in plan.after.items())

    def of(method):
        return [position[run.key] for run in plan.runs if run.record["method"] == method]

    assert max(of("ConvNeXt A2MIM")) < position["pretrain ViT SimMIM seed 0"]
    assert max(of("ViT A2MIM")) < min(of("ResNet A2MIM w/o freq loss"))
    assert max(of("ResNet A2MIM w/o freq loss")) < min(of("ViT A2MIM (3 ep)"))
    assert [run.key for run in plan.examples] == ["100 labels/class 40 ep ResNet random init seed 0",
                                                  "100/class probe ResNet random init seed 0"]

    # The convergence curve's run at the benchmark's budget is the benchmark's random-init run: one cached run. The
    # costly 640-epoch point of the ViT runs seed 0 only.
    random_rows = [r for r in rows if r.epochs is None]
    families = ["vit", "resnet", "convnext"]
    curve = plan_runs(random_rows, convergence_protocols(budget, families), budget, data, tmp_path)
    # The ViT (320 epochs) at 10-640, the CNNs (40 epochs) at 10-80
    assert len(curve.evaluations) == 6 * 3 + 1 + 2 * 4 * 3 and not curve.pretraining
    assert _flag(evaluations["100 labels/class 40 ep ResNet A2MIM seed 0"].command, "--num_train_epochs") == "40"
    assert [r.record["seed"] for r in curve.evaluations if r.key.startswith("100 labels/class 640 ep")] == [0]
    assert not any(r.key.startswith("100 labels/class 160 ep ResNet") for r in curve.evaluations)
    same = {run.key: run for run in curve.evaluations}[random_init.key]
    assert (same.command, same.output_dir) == (random_init.command, random_init.output_dir)


def _finish_as_cached(runs, accuracy_of):
    """Write each run's `benchmark_run.json` as if it had finished, with test top-1 `accuracy_of(run)`."""
    from benchmarks.fashion_mnist import portable

    for run in runs:
        if run.key.startswith("pretrain "):
            result = {"checkpoint": str(run.output_dir / "checkpoint"), "train_loss": 0.5}
        elif run.command[1] == "run_linear_probe.py":
            result = {"accuracies": {"linear probe (100/class)": accuracy_of(run), "20-NN (100/class)": 0.5}}
        else:
            result = {"accuracies": {"100 labels/class": accuracy_of(run)}}
        run.output_dir.mkdir(parents=True, exist_ok=True)
        (run.output_dir / "benchmark_run.json").write_text(json.dumps(
            {"key": run.key, "command": portable(run.command), "code": run.identity, "seconds": 1.0, **result}))


def test_cached_only_reports_convergence_then_the_benchmark_over_pretraining_seeds(fake_fashion_mnist, tmp_path,
                                                                                   monkeypatch):
    import benchmarks.fashion_mnist as bench

    budget = bench.Budget("full", pretrain_images=20, pretrain_epochs=(2, 6), pretrain_batch_size=10,
                          protocols=(bench.Protocol("100 labels/class", 100, epochs=40, convergence_epochs=(20, 40)),
                                     bench.Protocol("100/class", 100, probe=True)),
                          test_per_class=2)
    monkeypatch.setitem(bench.BUDGETS, "full", budget)
    methods = ["vit-random-init", "vit-simmim", "vit-a2mim"]
    flags = ["--cached_only", "--cache_dir", str(tmp_path / "cache"), "--results_dir", str(tmp_path / "results"),
             "--methods", *methods]
    data = bench.export_fashion_mnist(tmp_path / "cache" / "data", 20, 2)
    rows = bench.table_rows(bench.METHODS[:3], budget)
    run_dir = tmp_path / "cache" / "full"
    curve = bench.plan_runs(rows[:1], bench.convergence_protocols(budget, ["vit"]), budget, data, run_dir)
    _finish_as_cached(curve.runs, lambda run: 0.70 + 0.05 * (run.record["epochs"] == 40) + 0.01 * run.record["seed"])
    bench.main(["--convergence", *flags])
    convergence = (tmp_path / "results" / "fashion_mnist_convergence.md").read_text()
    assert "| ViT random init | 100 labels/class | 71.0 ± 1.0 | **76.0 ± 1.0** |" in convergence
    assert "budget, mean ± std over seeds 0, 1, 2 (each seed: its own initial encoder and labelled subset);" \
        in convergence

    plan = bench.plan_runs(rows, budget.protocols, budget, data, run_dir)
    gains = {"ViT random init": 0.0, "ViT SimMIM": 0.05, "ViT A2MIM": 0.06, "ViT SimMIM (6 ep)": 0.07,
             "ViT A2MIM (6 ep)": 0.10}
    _finish_as_cached([run for run in plan.runs if not run.output_dir.joinpath("benchmark_run.json").is_file()],
                      lambda run: 0.75 + gains[run.record["method"]] + 0.01 * run.record["seed"])
    bench.main(flags)
    report = (tmp_path / "results" / "fashion_mnist.md").read_text()
    assert "| ViT A2MIM (6 ep) | ViT 96x4, A2MIM (L1 + 0.1 freq, mean fill) | **86.0 ± 1.0** | **86.0 ± 1.0** |" in report
    assert "| 6 | 100 labels/class | ViT A2MIM (6 ep): 86.0 ± 1.0 | ViT SimMIM (6 ep): 83.0 ± 1.0 | +3.0 | better |" \
        in report
    assert "| ViT A2MIM vs ViT SimMIM | 100 labels/class | +1.0 | no clear difference | 3/3 |" in report
    assert "- ViT random init, 100 labels/class: the curve lacks 40 epochs or any longer budget" in report
    assert "--max_steps 4 " in report and "--max_steps 12 " in report  # 2 and 6 epochs of 20 images, batch 10
    saved = json.loads((tmp_path / "results" / "fashion_mnist.json").read_text())
    assert saved["missing_runs"] == [] and len(saved["runs"]) == 5 * 3 * 3  # rows x columns x seeds
    assert saved["budget_pairs"] == [[2, "ViT A2MIM", "ViT SimMIM"], [6, "ViT A2MIM (6 ep)", "ViT SimMIM (6 ep)"]]


def test_quick_mode_reports_to_its_own_folder_and_never_overwrites_the_full_results(fake_fashion_mnist, tmp_path,
                                                                                   monkeypatch):
    import benchmarks.fashion_mnist as bench

    quick = bench.Budget("quick", pretrain_images=20, pretrain_epochs=(1,), pretrain_batch_size=10,
                         protocols=(bench.Protocol("100 labels/class", 100, epochs=2, convergence_epochs=(2, 4)),),
                         test_per_class=2, seeds=(0,))
    monkeypatch.setitem(bench.BUDGETS, "quick", quick)
    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path / "results")
    flags = ["--quick", "--cached_only", "--methods", "vit-random-init", "--cache_dir", str(tmp_path / "cache")]
    bench.main(flags)
    bench.main(["--convergence", *flags])
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["quick"]
    assert sorted(p.name for p in (tmp_path / "results" / "quick").iterdir()) == [
        "fashion_mnist.json", "fashion_mnist.md", "fashion_mnist.png", "fashion_mnist_convergence.json",
        "fashion_mnist_convergence.md", "fashion_mnist_convergence.png"]
    report = (tmp_path / "results" / "quick" / "fashion_mnist.md").read_text()
    assert "Test top-1 (%), one pretraining seed (no spread, so no verdicts);" in report
    assert "**Incomplete: 1 of 1 runs have not finished" in report
    convergence = (tmp_path / "results" / "quick" / "fashion_mnist_convergence.md").read_text()
    assert "against the fine-tuning budget, seed 0 only (no spread, so no verdicts); the benchmark's" in convergence


def test_an_empty_cache_never_overwrites_existing_results(fake_fashion_mnist, tmp_path, monkeypatch, capsys):
    import benchmarks.fashion_mnist as bench

    budget = bench.Budget("full", pretrain_images=20, pretrain_epochs=(1,), pretrain_batch_size=10,
                          protocols=(bench.Protocol("100 labels/class", 100, epochs=2, convergence_epochs=(2, 4)),),
                          test_per_class=2)
    monkeypatch.setitem(bench.BUDGETS, "full", budget)
    results = tmp_path / "results"
    results.mkdir()
    for name in ("fashion_mnist.md", "fashion_mnist_convergence.md"):
        (results / name).write_text("the committed results")
    flags = ["--cached_only", "--methods", "vit-random-init", "--cache_dir", str(tmp_path / "cache"),
             "--results_dir", str(results)]
    bench.main(flags)
    bench.main(["--convergence", *flags])
    assert [p.read_text() for p in sorted(results.iterdir())] == ["the committed results"] * 2
    said = capsys.readouterr().out
    assert f"None of the 3 runs has finished in this cache, so {results / 'fashion_mnist.md'} and its .json/.png " \
        "are left as they are" in said
    assert "Start the runs with `python benchmarks/fashion_mnist.py --convergence --methods vit-random-init" in said


def test_convergence_without_a_random_init_method_is_refused_before_any_work(tmp_path):
    from benchmarks.fashion_mnist import main

    with pytest.raises(SystemExit, match=r"^fashion_mnist.py: error: --convergence fine-tunes the random-init rows; "
                                         r"add one to --methods \(e.g. vit-random-init\).$"):
        main(["--convergence", "--methods", "vit-a2mim", "--cache_dir", str(tmp_path)])
    assert not any(tmp_path.iterdir())
