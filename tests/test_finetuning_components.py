"""Fine-tuning building blocks: layer-wise lr decay groups, MixUp/CutMix targets, losses, metrics, recipes, labels."""

import io
import logging

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features, Value
from timm.data import Mixup
from timm.data.auto_augment import RandAugment
from timm.data.random_erasing import RandomErasing
from timm.loss import BinaryCrossEntropy, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import Lamb
from transformers import (
    BeitConfig,
    BeitForImageClassification,
    BeitImageProcessor,
    ResNetConfig,
    ResNetForImageClassification,
    TrainerState,
    TrainingArguments,
    ViTConfig,
    ViTForImageClassification,
)
from transformers.trainer_utils import EvalPrediction

from modeling_a2mim.data import SkippedImageCounter
from modeling_a2mim.finetuning.arguments import RecipeArguments, resolve_recipe
from modeling_a2mim.finetuning.ema import EMACallback
from modeling_a2mim.finetuning.labels import resolve_label_column, samples_per_class
from modeling_a2mim.finetuning.layer_decay import layer_decay_multiplier
from modeling_a2mim.finetuning.metrics import LOCAL_ACCURACY, AccuracyMetrics, load_accuracy_metric, top_k_hits
from modeling_a2mim.finetuning.mixing import BatchMixing, ClassificationLoss
from modeling_a2mim.finetuning.models import load_classifier, native_image_size
from modeling_a2mim.finetuning.probe import extract_features, knn_predict
from modeling_a2mim.finetuning.recipes import RECIPES
from modeling_a2mim.finetuning.trainer import FinetuningTrainer
from modeling_a2mim.finetuning.transforms import (
    ClassificationBatchTransform,
    build_eval_image_processor,
    build_train_transform,
    collate_classification,
    image_processor_size,
)
from modeling_a2mim.training.optimization import build_parameter_groups


def tiny_beit_classifier(num_labels=3):
    config = BeitConfig(
        hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32, patch_size=4, image_size=16,
        use_mean_pooling=True, use_relative_position_bias=True, use_absolute_position_embeddings=True,
        layer_scale_init_value=0.1, num_labels=num_labels,
    )
    return BeitForImageClassification(config)


def groups_by_name(groups):
    return {name: group for group in groups for name in group["param_names"]}


# ----- layer-wise lr decay ------------------------------------------------------------------------------------------
def test_layer_decay_groups_for_beit():
    model, decay = tiny_beit_classifier(), 0.5
    groups = groups_by_name(build_parameter_groups(model, 1.0, 0.05, layer_decay_multiplier(model, decay)))
    assert set(groups) == {name for name, _ in model.named_parameters()}
    # 3 blocks: embeddings 0.5^4, block i 0.5^(3 - i), final norm and head 1.
    assert groups["beit.embeddings.patch_embeddings.projection.weight"]["lr"] == decay**4
    assert groups["beit.embeddings.cls_token"]["lr"] == decay**4
    for block in range(3):
        assert groups[f"beit.layers.{block}.mlp.fc1.weight"]["lr"] == decay ** (3 - block)
        assert groups[f"beit.layers.{block}.relative_position_bias.relative_position_bias_table"]["lr"] == decay ** (
            3 - block
        )
    assert groups["beit.pooler.layernorm.weight"]["lr"] == 1.0 and groups["classifier.weight"]["lr"] == 1.0
    no_decay = [
        "beit.embeddings.cls_token", "beit.embeddings.position_embeddings", "beit.layers.1.lambda_1",
        "beit.layers.1.layernorm_before.weight", "beit.layers.1.attention.q_proj.bias", "classifier.bias",
        "beit.layers.2.relative_position_bias.relative_position_bias_table", "beit.pooler.layernorm.bias",
    ]
    assert all(groups[name]["weight_decay"] == 0.0 for name in no_decay)
    assert groups["beit.layers.1.attention.q_proj.weight"]["weight_decay"] == 0.05
    assert groups["classifier.weight"]["weight_decay"] == 0.05


def test_layer_decay_groups_for_resnet_stages():
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3)
    model = ResNetForImageClassification(config)
    groups = groups_by_name(build_parameter_groups(model, 2.0, 0.1, layer_decay_multiplier(model, 0.5)))
    assert groups["resnet.embedder.embedder.convolution.weight"]["lr"] == 2.0 * 0.5**3
    assert groups["resnet.encoder.stages.0.layers.0.layer.0.convolution.weight"]["lr"] == 2.0 * 0.5**2
    assert groups["resnet.encoder.stages.1.layers.0.shortcut.convolution.weight"]["lr"] == 2.0 * 0.5
    assert groups["classifier.1.weight"]["lr"] == 2.0
    assert groups["resnet.encoder.stages.1.layers.0.layer.0.normalization.weight"]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="--layer_decay=1.5 must lie in"):
        layer_decay_multiplier(model, 1.5)


# ----- mixing and losses --------------------------------------------------------------------------------------------
def smoothed_one_hot(labels, num_classes, smoothing):
    """timm's label smoothing: off value s / K, on value 1 - s + s / K."""
    return F.one_hot(labels, num_classes).float() * (1 - smoothing) + smoothing / num_classes


def test_mixing_is_timm_mixup_with_the_recipes_switch_probability_and_smoothing():
    recipe = RECIPES["beit-ft"]
    mixing = BatchMixing(5, recipe.mixup_alpha, recipe.cutmix_alpha, recipe.label_smoothing)
    assert isinstance(mixing.mix, Mixup) and mixing.mix.switch_prob == 0.5 and mixing.mix.mode == "batch"
    labels = torch.tensor([0, 1, 2, 3])
    expected_pair = smoothed_one_hot(labels, 5, 0.1), smoothed_one_hot(labels.flip(0), 5, 0.1)
    cutmix_batches = 0
    for _ in range(200):
        images = torch.rand(4, 1, 8, 8) + 1  # no pixel equals its partner's
        mixed, targets = mixing(images, labels)
        from_self, from_partner = mixed == images, mixed == images.flip(0)
        if (from_self | from_partner).all():  # CutMix: every pixel from one of the two images
            cutmix_batches += 1
            lam = from_self[0].float().mean()
        else:  # MixUp: one weight for the whole batch
            lam = (mixed[0, 0, 0, 0] - images[3, 0, 0, 0]) / (images[0, 0, 0, 0] - images[3, 0, 0, 0])
        torch.testing.assert_close(targets, lam * expected_pair[0] + (1 - lam) * expected_pair[1], atol=1e-4,
                                   rtol=0)
    assert 70 <= cutmix_batches <= 130  # switch probability 0.5 (binomial(200, 0.5) stays in here with p > 0.99)


def test_mixing_an_odd_batch_keeps_the_last_image_with_its_smoothed_target():
    mixing = BatchMixing(3, mixup_alpha=0.8, label_smoothing=0.1)
    images, labels = torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2])
    mixed, targets = mixing(images, labels)
    assert torch.equal(mixed[2], images[2])
    torch.testing.assert_close(targets[2], smoothed_one_hot(labels, 3, 0.1)[2])
    torch.testing.assert_close(targets.sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="mixup_alpha > 0 or cutmix_alpha > 0"):
        BatchMixing(5)


def test_rsb_targets_are_mixed_one_hots_and_the_loss_is_timm_bce():
    recipe = RECIPES["rsb-a3"]
    mixing = BatchMixing(4, recipe.mixup_alpha, recipe.cutmix_alpha, recipe.label_smoothing)
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    _, targets = mixing(torch.rand(6, 3, 8, 8), labels)
    assert set(targets.nonzero()[:, 1].tolist()) <= set(labels.tolist())  # no smoothing mass on other classes
    assert torch.equal(targets + targets.flip(0), smoothed_one_hot(labels, 4, 0) + smoothed_one_hot(labels.flip(0), 4, 0))
    logits = torch.randn(6, 4)
    loss = ClassificationLoss(recipe.loss, recipe.label_smoothing)
    torch.testing.assert_close(loss(logits, targets), BinaryCrossEntropy(smoothing=0.0)(logits, targets))
    torch.testing.assert_close(loss(logits, labels), BinaryCrossEntropy(smoothing=0.0)(logits, labels))


def test_losses_match_timm_on_hard_and_soft_targets():
    logits, labels = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])
    soft = smoothed_one_hot(labels, 3, 0.1) * 0.7 + smoothed_one_hot(labels.flip(0), 3, 0.1) * 0.3
    torch.testing.assert_close(ClassificationLoss("cross_entropy", 0.1)(logits, labels),
                               LabelSmoothingCrossEntropy(0.1)(logits, labels))
    # Soft targets come smoothed from BatchMixing: the loss must not smooth them again.
    torch.testing.assert_close(ClassificationLoss("cross_entropy", 0.1)(logits, soft), SoftTargetCrossEntropy()(logits, soft))
    torch.testing.assert_close(ClassificationLoss("bce", 0.1)(logits, labels),
                               BinaryCrossEntropy(smoothing=0.1)(logits, labels))
    torch.testing.assert_close(ClassificationLoss("bce", 0.1)(logits, soft), BinaryCrossEntropy(smoothing=0.1)(logits, soft))
    assert ClassificationLoss("bce", 0.1).describe() == "bce (label smoothing 0.1)"
    with pytest.raises(ValueError, match="Unknown loss 'mse'"):
        ClassificationLoss("mse")


def test_offline_metric_equals_numpy_top1_and_top5():
    metric = load_accuracy_metric()  # the tests run with HF_HUB_OFFLINE=1: the Hub load fails and the copy is used
    assert LOCAL_ACCURACY.endswith("accuracy")
    rng = np.random.default_rng(0)
    logits, references = rng.normal(size=(50, 8)), rng.integers(0, 8, 50)
    results = AccuracyMetrics(metric)(EvalPrediction(predictions=logits, label_ids=references))
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert results["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == references))
    assert results["top5_accuracy"] == pytest.approx(np.mean((top5 == references[:, None]).any(1)))
    weights = rng.random(50)
    weighted = metric.compute(predictions=logits.argmax(1), references=references, sample_weight=weights)
    assert weighted["accuracy"] == pytest.approx(np.average(logits.argmax(1) == references, weights=weights))


def test_top_k_hits_keeps_the_reference_when_it_is_in_the_top_k():
    logits = np.array([[0.1, 0.5, 0.4], [0.9, 0.04, 0.06]])
    assert top_k_hits(logits, np.array([2, 1]), k=2).tolist() == [2, 0]


# ----- recipes ------------------------------------------------------------------------------------------------------
def test_recipe_fills_only_the_flags_not_given(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=64, weight_decay=0.3,
                             report_to="none", use_cpu=True)
    recipe = resolve_recipe(RecipeArguments(recipe="rsb-a3", mixup_alpha=0.5), args,
                            {"weight_decay", "per_device_train_batch_size"})
    assert recipe.optimizer == "lamb" and recipe.loss == "bce" and recipe.mixup_alpha == 0.5
    assert args.weight_decay == 0.3 and recipe.weight_decay == 0.3  # given: kept
    assert args.num_train_epochs == 100 and args.warmup_steps == pytest.approx(0.05)
    assert args.learning_rate == pytest.approx(8e-3 * (64 / 2048) ** 0.5)  # LAMB: sqrt scaling from batch 2048
    assert (recipe.train_image_size, recipe.eval_image_size, recipe.eval_crop_ratio) == (160, 224, 0.95)
    assert args.lr_scheduler_type == "cosine"

    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, report_to="none", use_cpu=True)
    recipe = resolve_recipe(RecipeArguments(recipe="beit-ft"), args, {"learning_rate"})
    assert args.learning_rate == 1e-3 and args.label_smoothing_factor == 0.1
    assert (recipe.layer_decay, recipe.ema_decay, recipe.random_erasing) == (0.65, 0.9999, 0.25)
    with pytest.raises(ValueError, match="Known recipes: rsb-a3, rsb-a2, beit-ft"):
        resolve_recipe(RecipeArguments(recipe="rsb-a1"), args, set())
    assert RECIPES["rsb-a2"].num_train_epochs == 300


# ----- labels -------------------------------------------------------------------------------------------------------
def test_label_column_errors_list_the_columns():
    features = Features({"image": Value("string"), "label": ClassLabel(names=["a", "b"]), "score": Value("int64")})
    dataset = Dataset.from_dict({"image": ["x", "y"], "label": [0, 1], "score": [3, 4]}, features=features)
    assert resolve_label_column(dataset) == ("label", ["a", "b"], None)
    with pytest.raises(ValueError, match=r"'kind' is not a column\. Columns: image \(Value\), label \(ClassLabel\)"):
        resolve_label_column(dataset, "kind")
    with pytest.raises(ValueError, match=r"Label column 'score' is .*not a class label\. Columns: image"):
        resolve_label_column(dataset, "score")
    strings = Dataset.from_dict({"image": ["x", "y", "z"], "species": ["dog", "cat", "dog"]})
    assert resolve_label_column(strings, "species") == ("species", ["cat", "dog"], {"cat": 0, "dog": 1})


def test_samples_per_class_is_balanced_and_seeded():
    dataset = Dataset.from_dict({"label": [0, 1, 2] * 10 + [0] * 5})
    subset = samples_per_class(dataset, "label", 4, seed=1)
    assert np.bincount(subset["label"]).tolist() == [4, 4, 4]
    assert samples_per_class(dataset, "label", 4, seed=1)["label"] == subset["label"]
    with pytest.raises(ValueError, match=r"fewer training images .*\{1: 10, 2: 10\}"):
        samples_per_class(dataset, "label", 12, seed=0)


# ----- transforms, EMA, optimizer, probes --------------------------------------------------------------------------
@pytest.mark.parametrize("name, magnitude", [("beit-ft", 9), ("rsb-a3", 6), ("rsb-a2", 7)])
def test_train_transform_is_timms_pipeline_with_the_recipes_parameters(name, magnitude):
    recipe = RECIPES[name]
    transform = build_train_transform(24, [0.5] * 3, [0.5] * 3, recipe)
    steps = {type(step).__name__: step for step in transform.transforms}
    crop = steps["RandomResizedCropAndInterpolation"]
    assert crop.scale == (recipe.min_crop_scale, 1.0) and crop.size == (24, 24)
    rand_augment = steps["RandAugment"]
    assert isinstance(rand_augment, RandAugment) and rand_augment.num_layers == 2
    assert {(op.magnitude, op.magnitude_std) for op in rand_augment.ops} == {(magnitude, 0.5)}
    assert "SolarizeIncreasing" in {op.name for op in rand_augment.ops}  # inc1: timm's increasing op set
    erasing = steps.get("RandomErasing")
    if recipe.random_erasing:
        assert isinstance(erasing, RandomErasing) and erasing.probability == recipe.random_erasing
        assert erasing.mode == "pixel" and erasing.per_pixel
    else:
        assert erasing is None
    image = PIL.Image.new("RGB", (40, 30), (128, 128, 128))
    assert transform(image).shape == (3, 24, 24)


def test_eval_processor_sizes():
    image = PIL.Image.new("RGB", (40, 30), (128, 128, 128))
    crop = build_eval_image_processor(16, [0.5] * 3, [0.5] * 3, crop_ratio=0.5)
    assert crop(image, return_tensors="pt")["pixel_values"].shape == (1, 3, 16, 16)
    assert crop.crop_pct == 0.5 and crop.size["shortest_edge"] == 16
    assert image_processor_size(crop) == 16
    assert image_processor_size(build_eval_image_processor(24, [0.5] * 3, [0.5] * 3)) == 24
    center_crop = BeitImageProcessor(size={"height": 40, "width": 40}, do_center_crop=True, crop_size=32)
    assert image_processor_size(center_crop) == 32


@pytest.mark.parametrize("preset, size", [("resnet-micro", 64), ("vit-micro", 32)])
def test_presets_train_at_their_resolution(preset, size):
    model, processor, _ = load_classifier(model_preset=preset, labels=["a", "b"])
    assert native_image_size(model, processor) == size


def train_with_ema(callback, model, weights, args=None):
    """Sets `model`'s (1, 2) weight to each value in turn, as an optimizer step would, and updates the EMA after each."""
    for value in weights:
        with torch.no_grad():
            model.weight.fill_(value)
        callback.on_step_end(args, None, None, model=model)


def test_ema_callback_averages_and_installs_weights(tmp_path):
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    callback = EMACallback(decay=0.5)
    callback.on_train_begin(None, None, None, model=model)
    train_with_ema(callback, model, (1.0, 3.0))
    callback.on_train_end(None, None, None, model=model)
    # AveragedModel starts the average at the first update: 1, then 0.5 * 1 + 0.5 * 3.
    assert torch.allclose(model.weight, torch.full((1, 2), 2.0))


def test_ema_callback_checkpoints_and_resumes_its_average(tmp_path, caplog):
    model = torch.nn.Linear(2, 1, bias=False)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    callback = EMACallback(decay=0.5)
    callback.on_train_begin(args, None, None, model=model)
    train_with_ema(callback, model, (1.0, 3.0), args)
    (tmp_path / "checkpoint-2").mkdir()
    callback.on_save(args, TrainerState(global_step=2), None)
    assert sorted(path.name for path in (tmp_path / "checkpoint-2").iterdir()) == ["ema.safetensors"]  # no temp file

    resumed = EMACallback(decay=0.5, resume_from=tmp_path / "checkpoint-2")
    resumed.on_train_begin(args, None, None, model=model)  # the resumed raw weights are 3, the saved EMA 2
    assert resumed.averaged.n_averaged.item() == 2
    assert torch.equal(resumed.averaged.module.weight, torch.full((1, 2), 2.0))
    train_with_ema(resumed, model, (4.0,), args)
    assert resumed.averaged.n_averaged.item() == 3
    assert torch.allclose(resumed.averaged.module.weight, torch.full((1, 2), 3.0))  # 0.5 * 2 + 0.5 * 4

    (tmp_path / "checkpoint-1").mkdir()
    restarted = EMACallback(decay=0.5, resume_from=tmp_path / "checkpoint-1")
    with caplog.at_level(logging.WARNING, logger="modeling_a2mim.finetuning.ema"):
        restarted.on_train_begin(args, None, None, model=model)
    assert "has no ema.safetensors" in caplog.text and "EMA restarts from the resumed weights" in caplog.text
    assert restarted.averaged.n_averaged.item() == 0


def test_lamb_optimizer_on_recipe_groups(tmp_path):
    model = tiny_beit_classifier()
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=0.1, weight_decay=0.02, report_to="none",
                             use_cpu=True)
    trainer = FinetuningTrainer(model=model, args=args, loss_function=ClassificationLoss("bce"),
                                optimizer_name="lamb", lr_multiplier=layer_decay_multiplier(model, 0.5))
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, Lamb)
    expected = [0.1 * 0.5**k for k in range(4, -1, -1)]
    assert sorted({group["lr"] for group in optimizer.param_groups}) == pytest.approx(expected)


def test_knn_with_the_training_set_as_queries_is_exact():
    features = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    labels = np.arange(30) % 3
    assert (knn_predict(features, labels, features, num_classes=3, k=1) == labels).all()


def probe_batches(size, count=2, batch_size=3):
    generator = torch.Generator().manual_seed(0)
    return [{"pixel_values": torch.randn(batch_size, 3, size, size, generator=generator),
             "labels": torch.arange(batch_size)} for _ in range(count)]


def test_probe_features_head_is_the_cls_token_and_mean_the_mean_of_the_patch_tokens():
    config = ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, patch_size=4,
                       image_size=16, num_labels=3)
    model, batches = ViTForImageClassification(config).eval(), probe_batches(16)
    with torch.no_grad():
        tokens = torch.cat([model.vit(pixel_values=b["pixel_values"]).last_hidden_state for b in batches])
    head, labels = extract_features(model, batches, pooling="head")
    mean, _ = extract_features(model, batches, pooling="mean")
    assert head.shape == mean.shape == (6, 16) and labels.tolist() == [0, 1, 2] * 2
    np.testing.assert_allclose(head, tokens[:, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(mean, tokens[:, 1:].mean(1).numpy(), atol=1e-6)


def test_probe_features_of_a_resnet_are_the_pooled_map_either_way():
    model = ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                                      layer_type="basic", num_labels=3)).eval()
    batches = probe_batches(32)
    head, _ = extract_features(model, batches, pooling="head")
    mean, _ = extract_features(model, batches, pooling="mean")
    assert head.shape == (6, 16)
    np.testing.assert_allclose(mean, head, atol=1e-6)
    with pytest.raises(ValueError, match="pooling='cls' is not one of"):
        extract_features(model, batches, pooling="cls")


def test_batch_transform_maps_string_labels_and_drops_unreadable_images():
    buffer = io.BytesIO()
    PIL.Image.new("L", (10, 12), 200).save(buffer, "PNG")
    good = {"bytes": buffer.getvalue(), "path": None}
    counter = SkippedImageCounter()
    processor = build_eval_image_processor(8, [0.5] * 3, [0.5] * 3)
    transform = ClassificationBatchTransform("img", "kind", processor, counter, label_map={"cat": 0, "dog": 1})
    out = transform({"img": [good, {"bytes": b"junk", "path": "x.png"}, good], "kind": ["dog", "cat", "cat"]})
    assert out["labels"] == [1, 0, 0] and out["pixel_values"][1] is None and counter.value == 1
    examples = [{"pixel_values": p, "labels": y} for p, y in zip(out["pixel_values"], out["labels"])]
    batch = collate_classification(examples)
    assert batch["pixel_values"].shape == (2, 3, 8, 8) and batch["labels"].tolist() == [1, 0]
    with pytest.raises(ValueError, match="Every image of a batch failed to decode"):
        collate_classification([{"pixel_values": None, "labels": 0}])
