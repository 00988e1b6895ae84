"""The dense transfer benchmark's pieces that need no training: the budget choice, the plans, the verdicts and the
report (from runs written as if finished)."""

import json
import sys
from types import SimpleNamespace

from benchmarks.fashion_mnist_report import Summary, converged_budget
from tests.test_benchmark_fashion_mnist import fake_fashion_mnist  # noqa: F401 (a fixture)


def _flag(command, name):
    return command[command.index(name) + 1]


def test_the_budget_is_the_shortest_that_no_longer_one_beats_else_the_longest():
    spread = 1.0
    flat = {5: Summary(60.0, spread, 3), 10: Summary(70.0, spread, 3), 20: Summary(70.5, spread, 3),
            40: Summary(70.2, spread, 3)}
    assert converged_budget(flat) == 10  # 5 is beaten by 10; nothing beats 10 beyond the spread
    rising = {5: Summary(60.0, spread, 3), 10: Summary(65.0, spread, 3), 20: Summary(70.0, spread, 3)}
    assert converged_budget(rising) == 20  # never converged: the longest
    assert converged_budget({1: Summary(60.0, 0.0, 1), 2: Summary(61.0, 0.0, 1)}) == 2  # one seed: cannot judge
    assert converged_budget({}) is None


def test_a_curve_with_longer_points_to_run_names_no_budget():
    import benchmarks.dense_transfer as dense

    rising = {20: Summary(1.0, 0.1, 3), 40: Summary(2.3, 0.9, 3), 80: Summary(11.8, 1.6, 3)}
    key, done = ("BEiT random init", "mAP"), ("ConvNeXt random init", "mAP")
    curves = {key: rising, done: rising}
    chosen = {key: 80, done: 80}

    def missing_runs(*epochs):  # the curve's unfinished runs of `key`, one per (epochs, seed)
        runs = [SimpleNamespace(key=f"{e} {seed}", record={"method": key[0], "epochs": e})
                for seed, e in enumerate(epochs)]
        return dense.Plan(runs, []), [run.key for run in runs]

    pending = dense.unfinished_points(*missing_runs(320, 160, 160), chosen, "mAP")
    assert pending == {key: [160, 320]}
    # the unfinished curve keeps its verdict but has no bold budget and no "the runs use" sentence
    assert dense.picked_budgets(chosen, pending) == {done: 80}
    unfinished, finished = dense.budget_sentences(curves, chosen, pending)
    assert unfinished.endswith("adds +9.5 points, beyond the seed spread: NOT converged; raise this protocol's epochs. "
                               "The curve has not finished (160, 320 epochs to run): no budget is picked yet.")
    assert finished.endswith("The runs use the curve's longest budget, 80 epochs, which is not shown converged.")
    # a shorter point left: the longest still picks
    assert dense.picked_budgets(chosen, dense.unfinished_points(*missing_runs(40), chosen, "mAP")) == chosen
    # converged at 80 on one seed of 160, with 160's other seeds and 320 to run: the verdict, and no pick either
    early = {**rising, 160: Summary(14.0, 0.0, 1)}
    pending = dense.unfinished_points(*missing_runs(320, 160, 160), chosen, "mAP")
    (sentence,) = dense.budget_sentences({key: early}, {key: 80}, pending)
    assert sentence.endswith("within the seed spread: converged. "
                             "The curve has not finished (160, 320 epochs to run): no budget is picked yet.")


def _budget():
    import benchmarks.dense_transfer as dense

    pretraining = dense.Budget("full", pretrain_images=20, pretrain_epochs=(1,), pretrain_batch_size=10, protocols=(),
                               test_per_class=2)
    # Segmentation's longest point runs seed 0 only, as in the full protocol; detection's runs every seed.
    tasks = tuple(dense.dataclasses.replace(task, convergence_epochs=(10, 20),
                                            convergence_seeds={20: (0,)} if task.name == dense.SEGMENTATION else {})
                  for task in dense.TASKS)
    return dense.DenseBudget("full", pretraining, train_scenes=4, eval_scenes=2, tasks=tasks, seeds=(0, 1, 2))


def test_plans_share_the_classification_benchmarks_pretraining_and_start_random_init_from_the_preset(tmp_path):
    import benchmarks.dense_transfer as dense
    from benchmarks.fashion_mnist import BUDGETS, METHODS, plan_runs, table_rows

    budget = dense.BUDGETS_DENSE["full"]
    rows = dense.table_rows(dense.DENSE_METHODS, budget.pretraining)
    assert [r.name for r in rows if r.method.family == "beit"] == ["BEiT random init", "BEiT SimMIM-style",
                                                                   "BEiT A2MIM"]
    scenes = {size: tmp_path / f"scenes{size}" for size in (32, 64, 96)}
    data = {"pretrain": tmp_path / "pretrain.parquet", "labelled": tmp_path / "labelled"}
    curve = dense.plan_curve(rows, budget, scenes, tmp_path)
    # A family's longest point runs seed 0 only, the others every seed (a longer point is judged against their spread).
    # Segmentation: ResNet 80 and 160 x 3 seeds + 320 x 1 (its curve converged and stops at 320), ConvNeXt and BEiT
    # 80, 160 and 320 x 3 + 640 x 1; detection: ResNet 20 to 320 x 3 + 640 x 1, ConvNeXt and BEiT 20 to 160 x 3 +
    # 320 x 1.
    assert len(curve.runs) == (2 * 3 + 1) + 2 * (3 * 3 + 1) + (5 * 3 + 1) + 2 * (4 * 3 + 1) and not curve.after
    assert [run.record["epochs"] for run in curve.runs if run.key.startswith("detection")
            and run.record["method"] == "ResNet random init"][:2] == [640, 320]
    curve_keys = {run.key for run in curve.runs}
    # Longest first, so that two jobs end together
    segmentation_epochs = {name: [run.record["epochs"] for run in curve.runs if run.key.startswith("segmentation")
                                  and run.record["method"] == name]
                           for name in ("ResNet random init", "ConvNeXt random init", "BEiT random init")}
    assert segmentation_epochs == {"ResNet random init": [320, 160, 160, 160, 80, 80, 80],
                                   "ConvNeXt random init": [640, 320, 320, 320, 160, 160, 160, 80, 80, 80],
                                   "BEiT random init": [640, 320, 320, 320, 160, 160, 160, 80, 80, 80]}
    assert [run.key for run in dense.left_out_seeds(rows, budget, scenes, tmp_path).runs if
            run.key.startswith("segmentation")] == [
        f"segmentation {epochs} ep {name} random init seed {seed}"
        for epochs, name in ((320, "ResNet"), (640, "ConvNeXt"), (640, "BEiT")) for seed in (1, 2)]
    assert _flag(next(r for r in curve.runs if r.key == "segmentation 640 ep ConvNeXt random init seed 0").command,
                 "--max_steps") == str(640 * 400 // 8)
    assert {f"segmentation 640 ep BEiT random init seed {s}" for s in (0, 1, 2)} & curve_keys == {
        "segmentation 640 ep BEiT random init seed 0"}
    first = {family: next(r for r in curve.runs if r.key.startswith(f"segmentation 80 ep {name} ")).command
             for family, name in (("resnet", "ResNet"), ("convnext", "ConvNeXt"), ("beit", "BEiT"))}
    # BEiT's head runs on a 4x larger map; the CNNs' learning rate is theirs
    assert {family: _flag(command, "--head_channels") for family, command in first.items()} == {
        "resnet": "64", "convnext": "64", "beit": "32"}
    assert {family: _flag(command, "--learning_rate") for family, command in first.items()} == {
        "resnet": "1e-2", "convnext": "1e-2", "beit": "3e-3"}
    longest = dense.plan_transfer(rows, budget, dense.chosen_budgets([], rows, budget), data, scenes, tmp_path)
    # No curve run has finished: each curve's longest budget, with the seeds the curve left out
    assert {r.key for r in longest.runs if r.key.startswith("segmentation 640 ep BEiT random init")} - curve_keys == {
        "segmentation 640 ep BEiT random init seed 1", "segmentation 640 ep BEiT random init seed 2"}
    assert {r.key for r in longest.runs if r.key.startswith("segmentation 640 ep ConvNeXt")} - curve_keys == {
        f"segmentation 640 ep ConvNeXt {row} seed {s}" for row in ("random init", "SimMIM-style", "A2MIM")
        for s in (0, 1, 2)} - {"segmentation 640 ep ConvNeXt random init seed 0"}
    assert ("random-init curve at 80, 160, 320, 640 epochs over the training scenes, resnet up to 320; metric "
            "`eval_mean_iou`") in "\n".join(dense.protocol_lines(budget))
    chosen = {key: 20 for key in dense.chosen_budgets([], rows, budget)}
    plan = dense.plan_transfer(rows, budget, chosen, data, scenes, tmp_path)
    runs = {run.key: run for run in plan.runs}
    assert len(plan.pretraining) == 6 * 3 and len(plan.evaluations) == 2 * 9 * 3
    assert len({run.output_dir for run in [*plan.runs, *curve.runs]}) == len(runs.keys() | {r.key for r in curve.runs})

    # The ResNet A2MIM pretraining is the classification benchmark's run: same command, same folder.
    classification = plan_runs(table_rows(METHODS, BUDGETS["full"]), BUDGETS["full"].protocols, BUDGETS["full"], data,
                               tmp_path)
    theirs = {run.key: run for run in classification.pretraining}["pretrain ResNet A2MIM seed 1"]
    ours = runs["pretrain ResNet A2MIM seed 1"]
    assert (ours.command, ours.output_dir, ours.code) == (theirs.command, theirs.output_dir, theirs.code)
    segmentation = runs["segmentation 20 ep ResNet A2MIM seed 1"]
    assert plan.after[segmentation.key] == ours.key and segmentation.source is ours
    assert _flag(segmentation.command, "--model_name_or_path") == str(ours.output_dir / "checkpoint")
    assert [_flag(segmentation.command, f) for f in ("--max_steps", "--seed", "--dataset_name", "--id2label")] == [
        "1000", "1", str(scenes[64]), str(scenes[64] / "id2label.json")]  # 20 epochs of 400 scenes at batch 8
    assert segmentation.code != ours.code  # the dense scripts are part of the evaluations' fingerprint
    assert segmentation.identity not in (segmentation.code, ours.code)  # and so is the pretraining it starts from

    random_init = runs["detection 20 ep BEiT random init seed 2"]
    assert _flag(random_init.command, "--model_preset") == "vit-micro" and random_init.key not in plan.after
    assert "--model_name_or_path" not in random_init.command and random_init.command[1] == "run_object_detection.py"
    assert [_flag(random_init.command, f) for f in ("--image_square_size", "--detector", "--max_steps")] == [
        "32", "rt_detr", "500"]
    assert random_init.key in {run.key for run in curve.runs}  # the curve's run at the chosen budget, reused
    position = {run.key: index for index, run in enumerate(plan.runs)}
    assert max(position[r.key] for r in plan.runs if "ResNet" in r.key) < min(
        position[r.key] for r in plan.runs if "BEiT" in r.key)  # the costlier ViT family last
    assert [run.key for run in plan.examples] == [
        "segmentation 20 ep ResNet random init seed 0", "segmentation 20 ep ResNet SimMIM-style seed 0",
        "detection 20 ep ResNet random init seed 0", "detection 20 ep ResNet SimMIM-style seed 0"]


def _finish(runs, metric_of):
    """Write each run's `benchmark_run.json` as if it had finished with `metric_of(run)`."""
    from benchmarks.fashion_mnist import portable

    for run in runs:
        if run.key.startswith("pretrain "):
            result = {"checkpoint": str(run.output_dir / "checkpoint"), "train_loss": 0.5}
        else:
            column = "mIoU (segmentation)" if run.key.startswith("segmentation") else "mAP (detection)"
            result = {"accuracies": {column: metric_of(run)}}
        run.output_dir.mkdir(parents=True, exist_ok=True)
        (run.output_dir / "benchmark_run.json").write_text(json.dumps(
            {"key": run.key, "command": portable(run.command), "code": run.identity, "seconds": 1.0, **result}))


def test_the_choice_counts_the_left_out_seeds_and_keeps_a_budget_already_compared(tmp_path):
    import benchmarks.dense_transfer as dense

    budget = dense.dataclasses.replace(_budget(), tasks=_budget().tasks[:1])  # segmentation: 20 epochs, seed 0 only
    rows = dense.table_rows([m for m in dense.DENSE_METHODS if m.family == "resnet"], budget.pretraining)
    scenes = {size: tmp_path / f"scenes{size}" for size in (64, 96)}
    assert [run.key for run in dense.left_out_seeds(rows, budget, scenes, tmp_path).runs] == [
        "segmentation 20 ep ResNet random init seed 1", "segmentation 20 ep ResNet random init seed 2"]

    def records(points):
        return [{"method": "ResNet random init", "protocol": "mIoU (segmentation)", "epochs": epochs, "seed": seed,
                 "accuracy": accuracy} for epochs, accuracies in points.items() for seed, accuracy in accuracies]

    key = ("ResNet random init", "mIoU (segmentation)")
    seed_0 = {10: [(0, 0.30), (1, 0.31), (2, 0.32)], 20: [(0, 0.34)]}
    assert dense.chosen_budgets(records(seed_0), rows, budget)[key] == 20  # beyond 10's spread
    every_seed = {**seed_0, 20: [(0, 0.34), (1, 0.29), (2, 0.32)]}  # with the left-out seeds: 10 is converged
    assert dense.chosen_budgets(records(every_seed), rows, budget)[key] == 10
    assert dense.chosen_budgets(records(every_seed), rows, budget,
                                lambda family, task, epochs: (family, epochs) == ("resnet", 20))[key] == 20


def test_the_pretraining_runs_queue_behind_the_curve_without_waiting_for_the_budgets(
        fake_fashion_mnist, tmp_path, monkeypatch):  # noqa: F811 (the fixture)
    import benchmarks.dense_transfer as dense

    monkeypatch.setitem(dense.BUDGETS_DENSE, "full", _budget())
    batches = []

    def execute(plan, args):  # nothing finishes
        batches.append([run.key for run in plan.runs])
        return {}, [run.key for run in plan.runs], 0.0

    monkeypatch.setattr(dense, "execute", execute)
    flags = ["--families", "resnet", "--cache_dir", str(tmp_path / "cache"), "--results_dir", str(tmp_path / "results")]
    dense.main(flags)
    curve = ["segmentation 20 ep ResNet random init seed 0",
             *(f"segmentation 10 ep ResNet random init seed {seed}" for seed in (0, 1, 2))]
    pretraining = [f"pretrain ResNet {row} seed {seed}" for row in ("SimMIM-style", "A2MIM") for seed in (0, 1, 2)]
    assert batches[0] == curve + pretraining  # the lanes the curve's last long point leaves idle go to pretraining
    assert batches[1][:len(pretraining)] == pretraining  # then reused by the fine-tuning phase
    dense.main([*flags, "--convergence"])
    assert batches[2] == curve  # the curves alone


def _resnet_cached_only(tmp_path, monkeypatch):
    """The `_budget` benchmark of the ResNet family with `--cached_only` into `tmp_path`, reported once (nothing has
    finished): `(budget, cache, results, flags)`."""
    import benchmarks.dense_transfer as dense

    budget = _budget()
    monkeypatch.setitem(dense.BUDGETS_DENSE, "full", budget)
    cache, results = tmp_path / "cache", tmp_path / "results"
    flags = ["--cached_only", "--families", "resnet", "--cache_dir", str(cache), "--results_dir", str(results)]
    dense.main(flags)
    return budget, cache, results, flags


def test_cached_only_picks_budgets_from_the_curves_then_reports_verdicts_over_seeds(
        fake_fashion_mnist, tmp_path, monkeypatch):  # noqa: F811 (the fixture)
    import benchmarks.dense_transfer as dense
    from benchmarks.fashion_mnist import REPO

    budget, cache, results, flags = _resnet_cached_only(tmp_path, monkeypatch)  # no report yet: an empty one
    report = (results / "dense_transfer_segmentation.md").read_text()
    # The segmentation curve (3 seeds at 10 epochs, seed 0 at 20), the pretraining (2 rows x 3 seeds), their
    # fine-tuning (2 x 3) and, as no curve run has finished, the longest budget's random init at seeds 1 and 2
    assert "**Incomplete: 18 of 18 runs have not finished" in report

    scenes = {size: dense.export_scenes(cache / "data", 4, 2, size) for size in (64, 96)}
    assert json.loads((scenes[64] / "id2label.json").read_text())["1"] == "T-shirt/top"
    rows = dense.table_rows([m for m in dense.DENSE_METHODS if m.family == "resnet"], budget.pretraining)
    run_dir = cache / "full"
    curve = dense.plan_curve(rows, budget, scenes, run_dir)
    seed = {run.key: run.record["seed"] for run in curve.runs}
    # Segmentation gains nothing beyond the spread after 10 epochs (seed 0 at 20 against 10's spread); detection still
    # gains at 20 (its longest).
    _finish(curve.runs, lambda run: {("segmentation", 10): 0.300, ("segmentation", 20): 0.305,
                                     ("detection", 10): 0.010, ("detection", 20): 0.050}[
        run.key.split()[0], run.record["epochs"]] + 0.01 * seed[run.key])
    chosen = dense.chosen_budgets(dense.evaluation_records(curve.runs, {
        run.key: json.loads((run.output_dir / "benchmark_run.json").read_text()) for run in curve.runs}), rows, budget)
    assert chosen == {("ResNet random init", "mIoU (segmentation)"): 10, ("ResNet random init", "mAP (detection)"): 20}
    dense.main([*flags, "--convergence"])  # the curves alone, in their own report; nothing else is planned
    convergence = (results / "dense_transfer_segmentation_convergence.md").read_text()
    assert "Incomplete" not in convergence and "--model_name_or_path" not in convergence
    assert "| ResNet random init | mIoU (segmentation) | **31.0 ± 1.0** | 30.5 (n=1) |" in convergence
    assert "(20 epochs) adds -0.5 points, within the seed spread: converged." in convergence
    assert "python run_semantic_segmentation.py --model_preset resnet-micro " in convergence
    assert "/segmentation-20-ep/" in convergence and "/segmentation-10-ep/" not in convergence  # the longest run's
    assert "![curves](dense_transfer_segmentation_convergence.png)" in convergence  # its own picture
    saved_curves = json.loads((results / "dense_transfer_segmentation_convergence.json").read_text())
    assert saved_curves["chosen_epochs"] == [
        {"method": "ResNet random init", "protocol": "mIoU (segmentation)", "epochs": 10}]
    assert len(saved_curves["runs"]) == 3 + 1 and not saved_curves["missing_runs"]
    data = {"pretrain": cache / "data" / "pretrain_unlabelled_20.parquet"}
    plan = dense.plan_transfer(rows, budget, chosen, data, scenes, run_dir)
    gains = {"ResNet random init": 0.0, "ResNet SimMIM-style": 0.002, "ResNet A2MIM": 0.05}
    _finish([run for run in plan.runs if not (run.output_dir / "benchmark_run.json").is_file()],
            lambda run: (0.300 if run.key.startswith("segmentation") else 0.050) + gains[run.record["method"]]
            + 0.01 * run.record["seed"])
    dense.main(flags)
    report = (results / "dense_transfer_segmentation.md").read_text()
    assert "Incomplete" not in report
    assert ("| ResNet A2MIM | resnet-micro, A2MIM (token at stage 3, mean fill, focal L1 + 0.5 freq) | **36.0 ± 1.0** "
            "|") in report
    assert "| ResNet random init | resnet-micro, 64 px, no pretraining | 31.0 ± 1.0 |" in report
    assert "| ResNet A2MIM vs ResNet random init | mIoU (segmentation) | +5.0 | better | 3/3 |" in report
    assert "- ResNet A2MIM vs ResNet SimMIM-style, mIoU (segmentation): better." in report
    assert "| ResNet random init | mIoU (segmentation) | **31.0 ± 1.0** | 30.5 (n=1) |" in report
    assert ("A family's longest curve point, at 20 epochs (seed 0 only), is judged against the shorter budget's seed "
            "spread;") in report
    assert "- ResNet random init, mIoU (segmentation): 10 epochs reach 31.0 %; the best longer budget (20 epochs) " \
           "adds -0.5 points, within the seed spread: converged." in report
    assert "python run_semantic_segmentation.py --model_preset resnet-micro " in report
    assert "run_object_detection.py" not in report
    assert "![curves](dense_transfer_segmentation_curves.png)" in report  # with the fine-tuning phase's seeds
    saved = json.loads((results / "dense_transfer_segmentation.json").read_text())
    assert saved["command"] == "python benchmarks/dense_transfer.py --families resnet --cache_dir " + str(cache) + \
        " --results_dir " + str(results)
    assert len(saved["runs"]) == 3 * 3 and len(saved["convergence_runs"]) == 3 + 1

    dense.main([*flags, "--task", "detection"])  # its own report, from the same pretraining runs
    report = (results / "dense_transfer_detection.md").read_text()
    assert "Incomplete" not in report
    # The detection scenes are 96 px: the table names them, not the classification input (64 px)
    assert "| ResNet random init | resnet-micro, 96 px, no pretraining | 6.0 ± 1.0 |" in report
    assert ("| ResNet SimMIM-style vs ResNet random init | mAP (detection) | +0.2 | no clear difference | 3/3 |"
            in report)
    assert ("- ResNet random init, mAP (detection): 10 epochs reach 2.0 %; the best longer budget (20 epochs) adds "
            "+4.0 points, beyond the seed spread: NOT converged; raise this protocol's epochs. The runs use the "
            "curve's longest budget, 20 epochs, which is not shown converged.") in report
    assert "python run_object_detection.py --model_name_or_path " in report
    saved_detection = json.loads((results / "dense_transfer_detection.json").read_text())
    assert saved_detection["pretraining"] == saved["pretraining"]
    assert len(saved_detection["runs"]) == 3 * 3 and len(saved_detection["convergence_runs"]) == 2 * 3
    everything = report + json.dumps(saved) + json.dumps(saved_detection)
    assert str(REPO) not in everything and sys.executable not in everything  # repository-relative, `python`
    assert sorted(p.name for p in results.iterdir()) == sorted([
        *(f"dense_transfer_{task}{end}" for task in ("detection", "segmentation")
          for end in (".json", ".md", ".png", "_curves.png")),
        "dense_transfer_segmentation_convergence.json", "dense_transfer_segmentation_convergence.md",
        "dense_transfer_segmentation_convergence.png",
        "dense_transfer_runs"])


def test_the_ledger_adds_up_runs_of_several_machines_and_the_report_counts_every_seed_of_the_curve(
        fake_fashion_mnist, tmp_path, monkeypatch):  # noqa: F811 (the fixture)
    import shutil

    import benchmarks.dense_transfer as dense

    budget, cache, results, flags = _resnet_cached_only(tmp_path, monkeypatch)
    scenes = {size: dense.export_scenes(cache / "data", 4, 2, size) for size in (64, 96)}
    rows = dense.table_rows([m for m in dense.DENSE_METHODS if m.family == "resnet"], budget.pretraining)
    curve = dense.plan_curve(rows, budget, scenes, cache / "full")
    # 10 epochs: 30, 31, 32 %; seed 0 at 20 epochs beats that beyond the spread, so the curve picks 20 ...
    _finish(curve.runs, lambda run: {10: 0.30 + 0.01 * run.record["seed"], 20: 0.34}[run.record["epochs"]])
    dense.main(flags)  # ... and the ledger keeps these runs
    # A fresh machine: no cache, the committed ledger. The fine-tuning phase adds seeds 1 and 2 at 20 epochs (29 and
    # 32 %), with which 20 epochs no longer beat 10.
    shutil.rmtree(cache)
    dense.main(flags)
    rows_report = (results / "dense_transfer_segmentation.md").read_text()
    assert "| ResNet random init | mIoU (segmentation) | 31.0 ± 1.0 | **34.0 (n=1)** |" in rows_report  # the ledger's
    scenes = {size: dense.export_scenes(cache / "data", 4, 2, size) for size in (64, 96)}
    data = {"pretrain": cache / "data" / "pretrain_unlabelled_20.parquet"}
    chosen = {("ResNet random init", "mIoU (segmentation)"): 20}
    segmentation = dense.dataclasses.replace(budget, tasks=budget.tasks[:1])
    assert segmentation.tasks[0].name == dense.SEGMENTATION
    plan = dense.plan_transfer(rows, segmentation, chosen, data, scenes, cache / "full")
    todo = [run for run in plan.runs if not any((results / "dense_transfer_runs" / run.output_dir.relative_to(
        cache / "full")).glob("benchmark_run-*.json"))]
    assert {run.key for run in todo if "random init" in run.key} == {
        "segmentation 20 ep ResNet random init seed 1", "segmentation 20 ep ResNet random init seed 2"}
    _finish(todo, lambda run: {1: 0.29, 2: 0.32}[run.record["seed"]] if "random init" in run.key else 0.35)
    for run in todo:  # made on a second machine
        record = json.loads((run.output_dir / "benchmark_run.json").read_text())
        (run.output_dir / "benchmark_run.json").write_text(json.dumps({**record, "machine": "machine B"}))
    dense.main(flags)
    report = (results / "dense_transfer_segmentation.md").read_text()
    assert "Incomplete" not in report
    assert "| ResNet random init | mIoU (segmentation) | 31.0 ± 1.0 | **31.7 ± 2.5** |" in report
    assert ("- ResNet random init, mIoU (segmentation): 10 epochs reach 31.0 %; the best longer budget (20 epochs) "
            "adds +0.7 points, within the seed spread: converged. The runs use the curve's longest budget, 20 epochs, "
            "which the curve picked before its other seeds had run; with them, 10 epochs are converged and 20 epochs "
            "past that.") in report
    assert "from runs made on an unrecorded machine (4 runs); machine B (14 runs)" in report
    saved = json.loads((results / "dense_transfer_segmentation.json").read_text())
    assert saved["run_machines"] == {"an unrecorded machine": 4, "machine B": 14}
    assert len(saved["convergence_runs"]) == 4 + 2 and len(saved["runs"]) == 3 * 3


def test_an_empty_cache_never_overwrites_existing_results(fake_fashion_mnist, tmp_path, monkeypatch, capsys):  # noqa: F811
    import benchmarks.dense_transfer as dense

    monkeypatch.setitem(dense.BUDGETS_DENSE, "full", _budget())
    results = tmp_path / "results"
    results.mkdir()
    (results / "dense_transfer_detection.md").write_text("the committed results")
    dense.main(["--cached_only", "--families", "resnet", "--task", "detection", "--cache_dir",
                str(tmp_path / "cache"), "--results_dir", str(results)])
    assert (results / "dense_transfer_detection.md").read_text() == "the committed results"
    assert "Start the runs with `python benchmarks/dense_transfer.py --families resnet --task detection" \
        in capsys.readouterr().out

