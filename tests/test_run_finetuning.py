"""End-to-end runs of run_finetuning.py / run_linear_probe.py at tiny sizes (a few steps on the embedded data)."""

import io
import json
import sys
from unittest import mock

import numpy as np
import PIL.Image
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
    TrainerCallback,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
    pipeline,
)

import run_finetuning
import run_linear_probe
from modeling_a2mim import A2MIMForMaskedImageModeling
from modeling_a2mim.data import decode_image, load_image_dataset

from .helpers import tiny_resnet_config, tiny_vit_config

COMMON = [
    "--do_train", "--do_eval", "--max_steps", "2", "--per_device_train_batch_size", "8",
    "--per_device_eval_batch_size", "16", "--max_train_samples", "32", "--max_eval_samples", "32",
    "--use_cpu", "--report_to", "none", "--dataloader_num_workers", "0", "--save_strategy", "no", "--seed", "0",
]
EVAL_IMAGES = 32


def run_script(script, *args, **kwargs):
    with mock.patch.object(sys, "argv", [script.__file__, *args]):
        return script.main(**kwargs)


def finetune(output_dir, *args):
    run_script(run_finetuning, "--output_dir", str(output_dir), *COMMON, *args)
    return {name: json.loads((output_dir / f"{name}_results.json").read_text()) for name in ("train", "eval", "all")}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for name, config in (("vit", tiny_vit_config()), ("resnet", tiny_resnet_config())):
        model = A2MIMForMaskedImageModeling(config)
        model.save_pretrained(root / f"a2mim-{name}")
        model.save_encoder(root / f"encoder-{name}")
        paths[name], paths[f"encoder-{name}"] = root / f"a2mim-{name}", root / f"encoder-{name}"
    return paths


def pipeline_top1(model_dir) -> float:
    """Top-1 of `pipeline("image-classification")` on the script's eval images (the first test images)."""
    test = load_image_dataset()["test"].select(range(EVAL_IMAGES))
    classify = pipeline("image-classification", model=str(model_dir), device="cpu")
    outputs = classify([decode_image(image) for image in test["image"]], top_k=1, batch_size=16)
    names = test.features["label"].names
    return float(np.mean([out[0]["label"] == names[label] for out, label in zip(outputs, test["label"])]))


def assert_stock_classifier(model_dir, architecture):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == [architecture] and "auto_map" not in config
    assert config["id2label"]["0"] == "T-shirt/top" and config["label2id"]["Ankle boot"] == 9
    assert (model_dir / "preprocessor_config.json").is_file()


def test_beit_recipe_from_a2mim_vit_checkpoint_then_eval_only(checkpoints, tmp_path):
    output = tmp_path / "vit-ft"
    results = finetune(output, "--model_name_or_path", str(checkpoints["vit"]), "--recipe", "beit-ft",
                       "--train_image_size", "32", "--eval_image_size", "32")
    assert_stock_classifier(output, "BeitForImageClassification")
    eval_accuracy = results["eval"]["eval_accuracy"]
    assert 0 <= eval_accuracy <= 1 and results["eval"]["eval_top5_accuracy"] >= eval_accuracy
    assert results["all"]["eval_accuracy"] == eval_accuracy and "train_loss" in results["all"]
    assert pipeline_top1(output) == pytest.approx(eval_accuracy)
    assert AutoConfig.from_pretrained(output).use_mean_pooling  # fc_norm over mean-pooled patch tokens
    card = (output / "README.md").read_text()
    assert "beit-ft" in card and "Fashion-MNIST" in card and f"| eval_accuracy | {eval_accuracy:.4g} |" in card
    assert "| layer_decay | 0.65 |" in card and "| ema_decay | 0.9999 |" in card
    assert "AutoModelForImageClassification.from_pretrained" in card and "import modeling_a2mim" not in card

    again = tmp_path / "vit-eval"
    run_script(run_finetuning, "--model_name_or_path", str(output), "--output_dir", str(again), "--do_eval",
               "--max_eval_samples", str(EVAL_IMAGES), "--use_cpu", "--report_to", "none")
    assert json.loads((again / "eval_results.json").read_text())["eval_accuracy"] == pytest.approx(eval_accuracy)


def test_rsb_a3_from_a2mim_resnet_checkpoint(checkpoints, tmp_path):
    output = tmp_path / "resnet-a3"
    results = finetune(output, "--model_name_or_path", str(checkpoints["resnet"]), "--recipe", "rsb-a3",
                       "--train_image_size", "48", "--eval_image_size", "64")
    assert_stock_classifier(output, "ResNetForImageClassification")
    processor = json.loads((output / "preprocessor_config.json").read_text())
    assert processor["crop_pct"] == 0.95 and processor["size"] == {"shortest_edge": 64}
    assert pipeline_top1(output) == pytest.approx(results["eval"]["eval_accuracy"])


def test_rsb_a2_from_exported_encoder_with_few_labels_per_class(checkpoints, tmp_path):
    output = tmp_path / "resnet-a2"
    results = finetune(output, "--model_name_or_path", str(checkpoints["encoder-resnet"]), "--recipe", "rsb-a2",
                       "--train_image_size", "64", "--eval_image_size", "64", "--train_samples_per_class", "2",
                       "--max_steps", "3")
    # 2 images x 10 classes = 20 training images: 3 batches of 8 make exactly one epoch.
    assert results["train"]["epoch"] == pytest.approx(1.0)
    assert_stock_classifier(output, "ResNetForImageClassification")
    assert pipeline_top1(output) == pytest.approx(results["eval"]["eval_accuracy"])


def test_beit_recipe_from_a_stock_vit_encoder_without_image_processor(tmp_path):
    encoder = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                 patch_size=4, image_size=32), add_pooling_layer=False)
    encoder.save_pretrained(tmp_path / "vit-encoder")
    output = tmp_path / "vit-stock"
    results = finetune(output, "--model_name_or_path", str(tmp_path / "vit-encoder"), "--recipe", "beit-ft",
                       "--train_image_size", "32", "--eval_image_size", "32")
    assert_stock_classifier(output, "ViTForImageClassification")
    assert pipeline_top1(output) == pytest.approx(results["eval"]["eval_accuracy"])


def test_plain_finetune_from_scratch(tmp_path):
    output = tmp_path / "scratch"
    results = finetune(output, "--model_preset", "vit-micro")
    assert_stock_classifier(output, "BeitForImageClassification")
    assert AutoConfig.from_pretrained(output).image_size == 32
    assert pipeline_top1(output) == pytest.approx(results["eval"]["eval_accuracy"])
    assert "plain: AdamW + cosine" in (output / "README.md").read_text()


class Killed(Exception):
    pass


class KillAfterFirstCheckpoint(TrainerCallback):
    """Stops training like a kill would: right after `checkpoint-2` is complete, before step 3 runs."""

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise Killed


def test_ema_continues_after_a_kill_and_resume(tmp_path):
    output = tmp_path / "ema"
    args = ["--model_preset", "vit-micro", "--ema_decay", "0.5", "--max_steps", "4", "--save_strategy", "steps",
            "--save_steps", "1"]
    with pytest.raises(Killed):
        run_script(run_finetuning, "--output_dir", str(output), *COMMON, *args,
                   callbacks=[KillAfterFirstCheckpoint()])
    assert not (output / "model.safetensors").exists() and not (output / "checkpoint-3").exists()
    finetune(output, *args)

    saved_ema = [load_file(output / f"checkpoint-{step}" / "ema.safetensors") for step in (2, 4)]
    assert [ema.pop("n_averaged").item() for ema in saved_ema] == [2, 4]  # continued from 2, not restarted at 0
    raw_3, raw_4, final = (AutoModelForImageClassification.from_pretrained(folder).state_dict()
                           for folder in (output / "checkpoint-3", output / "checkpoint-4", output))
    # The resumed EMA goes on from the saved one over the resumed run's raw weights of steps 3 and 4 (a restarted one
    # would be 0.5 * w3 + 0.5 * w4), and the saved model is that EMA.
    for name, tensor in final.items():
        expected = 0.25 * saved_ema[0][f"module.{name}"] + 0.25 * raw_3[name] + 0.5 * raw_4[name]
        assert torch.allclose(saved_ema[1][f"module.{name}"], expected, atol=1e-6), name
        assert torch.equal(tensor, saved_ema[1][f"module.{name}"]), name


def test_push_to_hub_uploads_the_prepared_folder(checkpoints, tmp_path):
    output = tmp_path / "pushed"
    with mock.patch("modeling_a2mim.training.hub.HfApi") as hf_api:
        finetune(output, "--model_name_or_path", str(checkpoints["encoder-vit"]), "--push_to_hub",
                 "--hub_model_id", "someone/tiny-vit-ft", "--hub_token", "hf_test")
    api = hf_api.return_value
    api.whoami.assert_called_once()  # before training, with the repository check
    assert [call.args[0] for call in api.create_repo.call_args_list] == ["someone/tiny-vit-ft"] * 2
    commit = api.create_commit.call_args
    assert commit.args[0] == "someone/tiny-vit-ft"
    pushed = sorted(operation.path_in_repo for operation in commit.kwargs["operations"])
    assert pushed == ["README.md", "all_results.json", "config.json", "eval_results.json", "model.safetensors",
                      "preprocessor_config.json", "train_results.json"]
    card = (output / "README.md").read_text()
    assert "someone/tiny-vit-ft" in card and "| eval_accuracy |" in card and "Fashion-MNIST" in card
    with pytest.raises(ValueError, match="--push_to_hub needs --hub_model_id"):
        finetune(tmp_path / "x", "--model_name_or_path", str(checkpoints["vit"]), "--push_to_hub")


def test_a_missing_label_column_lists_the_columns(checkpoints, tmp_path):
    with pytest.raises(ValueError, match=r"'kind' is not a column\. Columns: image \(Image\), label \(ClassLabel\)"):
        finetune(tmp_path / "x", "--model_name_or_path", str(checkpoints["vit"]), "--label_column_name", "kind")


def test_vit_resolution_mismatch_is_refused(checkpoints, tmp_path):
    with pytest.raises(ValueError, match="runs at one resolution .32 px.*--train_image_size 32"):
        finetune(tmp_path / "x", "--model_name_or_path", str(checkpoints["vit"]), "--recipe", "beit-ft")


def test_undecodable_images_of_a_saved_dataset_are_skipped_and_counted(checkpoints, tmp_path):
    rows = {"image": [], "label": []}
    for index in range(16):
        buffer = io.BytesIO()
        PIL.Image.new("RGB", (20, 20), (index * 10, 0, 0)).save(buffer, "PNG")
        data = b"broken" if index % 4 == 0 else buffer.getvalue()
        rows["image"].append({"bytes": data, "path": None})
        rows["label"].append(index % 2)
    features = Features({"image": Image(), "label": ClassLabel(names=["red", "dark"])})
    Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "saved"))  # a single saved Dataset
    output = tmp_path / "skip"
    run_script(run_finetuning, "--model_name_or_path", str(checkpoints["vit"]), "--output_dir", str(output),
               "--dataset_name", str(tmp_path / "saved"), "--train_val_split", "0.25", "--do_train",
               "--do_eval", "--num_train_epochs", "1", "--per_device_train_batch_size", "4", "--use_cpu",
               "--report_to", "none", "--save_strategy", "no")
    # one pass over the 12 training and 4 evaluation rows meets each of the 4 broken images once
    assert json.loads((output / "eval_results.json").read_text())["skipped_images"] == 4
    assert json.loads((output / "config.json").read_text())["id2label"] == {"0": "red", "1": "dark"}


def bag_classifier(folder):
    """A stock ResNet classifier with the embedded data's 10 class names that answers "Bag" (id 8) for every image."""
    names = load_image_dataset()["test"].features["label"].names
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                          id2label=dict(enumerate(names)), label2id={name: i for i, name in enumerate(names)})
    model = ResNetForImageClassification(config)
    with torch.no_grad():
        model.classifier[-1].weight.zero_()
        model.classifier[-1].bias.copy_(torch.eye(10)[names.index("Bag")])
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_a_validation_file_with_a_subset_of_the_classes_is_evaluated_whole(tmp_path):
    model_dir = bag_classifier(tmp_path / "classifier")
    test = load_image_dataset()["test"]
    names = test.features["label"].names
    kept = [row for row in test.select(range(60)) if names[row["label"]] in ("Sneaker", "Bag")]
    subset = Dataset.from_dict(
        {"image": [row["image"] for row in kept], "label": [names[row["label"]] for row in kept]},
        features=Features({"image": Image(), "label": ClassLabel(names=["Bag", "Sneaker"])}),
    )
    subset.to_parquet(str(tmp_path / "test.parquet"))
    output = tmp_path / "eval"
    run_script(run_finetuning, "--model_name_or_path", str(model_dir), "--validation_file",
               str(tmp_path / "test.parquet"), "--do_eval", "--use_cpu", "--report_to", "none", "--output_dir",
               str(output))
    # The file's ids 0 (Bag) and 1 (Sneaker) are the model's 8 and 7: a Bag-only model is right on the Bags.
    bags = sum(names[row["label"]] == "Bag" for row in kept)
    assert 0 < bags < len(kept)
    results = json.loads((output / "eval_results.json").read_text())
    assert results["eval_accuracy"] == pytest.approx(bags / len(kept))

    with pytest.raises(ValueError, match=r"^The evaluation data has classes \['Cat'\] that the model does not know"):
        Dataset.from_dict({"image": [kept[0]["image"]], "label": ["Cat"]}).cast_column(
            "image", Image()).to_parquet(str(tmp_path / "cats.parquet"))
        run_script(run_finetuning, "--model_name_or_path", str(model_dir), "--validation_file",
                   str(tmp_path / "cats.parquet"), "--do_eval", "--use_cpu", "--output_dir", str(output))
    with pytest.raises(ValueError, match="--do_eval needs an evaluation split.*--validation_files FILE"):
        run_script(run_finetuning, "--model_name_or_path", str(model_dir), "--data_files", str(tmp_path / "test.parquet"),
                   "--do_eval", "--use_cpu", "--output_dir", str(output))


def test_linear_probe_and_knn(checkpoints, tmp_path):
    results = run_script(run_linear_probe, "--model_name_or_path", str(checkpoints["vit"]), "--output_dir",
                         str(tmp_path), "--max_train_samples", "60", "--max_eval_samples", "20", "--use_cpu")
    saved = json.loads((tmp_path / "probe_results.json").read_text())
    assert saved == results and (saved["train_samples"], saved["eval_samples"], saved["feature_dim"]) == (60, 20, 32)
    assert 0 <= saved["knn_accuracy"] <= 1 and 0 <= saved["linear_probe_accuracy"] <= 1 and saved["pooling"] == "head"
    load_image_dataset().save_to_disk(str(tmp_path / "saved"))  # a DatasetDict.save_to_disk folder works too
    mean = run_script(run_linear_probe, "--model_name_or_path", str(checkpoints["vit"]), "--output_dir",
                      str(tmp_path / "mean"), "--dataset_name", str(tmp_path / "saved"), "--max_train_samples", "60",
                      "--max_eval_samples", "20", "--use_cpu", "--pooling", "mean")
    assert (mean["pooling"], mean["feature_dim"], mean["train_samples"]) == ("mean", 32, 60)
