"""Segmentation components: the offline mIoU against a hand computation, the UperNet built on each family's encoder,
masks checks, joint transforms, sliding-window inference and the recipes."""

import json

import evaluate
import numpy as np
import PIL.Image
import pytest
import torch
from transformers import EvalPrediction, TrainingArguments, UperNetForSemanticSegmentation

from modeling_a2mim import A2MIMForMaskedImageModeling
from modeling_a2mim.data.scenes import SCENE_ID2LABEL, scene_dataset
from modeling_a2mim.segmentation.arguments import (
    SegmentationDataArguments,
    SegmentationRecipeArguments,
    resolve_recipe,
)
from modeling_a2mim.segmentation.data import check_masks, load_segmentation_splits, parse_id2label
from modeling_a2mim.segmentation.inference import slide_logits, sliding_window_starts
from modeling_a2mim.segmentation.metrics import LOCAL_MEAN_IOU, SegmentationMetrics, pixel_areas
from modeling_a2mim.segmentation.models import build_upernet
from modeling_a2mim.segmentation.recipes import PLAIN
from modeling_a2mim.segmentation.transforms import SegmentationBatchTransform, build_train_transform

from .helpers import tiny_convnext_config, tiny_resnet_config, tiny_vit_config
from .test_backbones import _expected_backbone_tensors

FAMILIES = {
    "beit": lambda: tiny_vit_config(backbone={"num_hidden_layers": 4}),
    "resnet": tiny_resnet_config,
    "convnext": tiny_convnext_config,
}

# Two 2x3 maps over 3 classes, 255 = ignore. Counted by hand over the 9 pixels whose reference is not 255:
#   class 0: predicted at 4, true at 3, both at 2 -> IoU 2 / (4 + 3 - 2) = 2 / 5, accuracy 2 / 3
#   class 1: predicted 2, true 3, both 2 -> IoU 2 / 3, accuracy 2 / 3
#   class 2: predicted 3, true 3, both 2 -> IoU 2 / 4, accuracy 2 / 3
#   overall accuracy 6 / 9
PREDICTIONS = [np.array([[0, 0, 1], [2, 2, 0]]), np.array([[1, 2, 0], [0, 1, 1]])]
REFERENCES = [np.array([[0, 1, 1], [2, 0, 255]]), np.array([[1, 2, 2], [0, 255, 255]])]
HAND = {"per_category_iou": [2 / 5, 2 / 3, 2 / 4], "per_category_accuracy": [2 / 3, 2 / 3, 2 / 3],
        "overall_accuracy": 6 / 9}


def test_offline_mean_iou_equals_the_hand_computation():
    metric = evaluate.load(LOCAL_MEAN_IOU)
    result = metric.compute(predictions=PREDICTIONS, references=REFERENCES, num_labels=3, ignore_index=255)
    np.testing.assert_allclose(result["per_category_iou"], HAND["per_category_iou"])
    np.testing.assert_allclose(result["per_category_accuracy"], HAND["per_category_accuracy"])
    assert result["mean_iou"] == pytest.approx(np.mean(HAND["per_category_iou"]))
    assert result["mean_accuracy"] == pytest.approx(np.mean(HAND["per_category_accuracy"]))
    assert result["overall_accuracy"] == pytest.approx(HAND["overall_accuracy"])
    # reduce_labels: reference 0 is ignored and the others drop by one (the Hub metric's option)
    reduced = metric.compute(predictions=[np.array([[0, 1]])], references=[np.array([[0, 2]])], num_labels=2,
                             ignore_index=255, reduce_labels=True)
    assert reduced["overall_accuracy"] == 1.0 and np.isnan(reduced["per_category_iou"][0])


def test_trainer_metrics_equal_the_module():
    """The Trainer path (per-batch areas, summed) gives the module's numbers, including a NaN class."""
    metrics = SegmentationMetrics({0: "a", 1: "b", 2: "c", 3: "never seen"})
    logits = torch.nn.functional.one_hot(torch.tensor(np.stack(PREDICTIONS)), 4).permute(0, 3, 1, 2).float()
    areas = metrics.preprocess_logits_for_metrics(logits, torch.tensor(np.stack(REFERENCES)))
    assert areas.shape == (2, 4, 4)
    result = metrics(EvalPrediction(predictions=areas.numpy(), label_ids=None))
    assert result["iou_a"] == pytest.approx(2 / 5) and result["iou_c"] == pytest.approx(2 / 4)
    assert np.isnan(result["iou_never seen"])
    assert result["mean_iou"] == pytest.approx(np.mean(HAND["per_category_iou"]))
    assert result["overall_accuracy"] == pytest.approx(HAND["overall_accuracy"])
    assert pixel_areas(torch.tensor(PREDICTIONS[0])[None], torch.tensor(REFERENCES[0])[None], 3, 255)[0, 3].tolist() \
        == [2, 2, 1]  # true pixels per class in the first map


def _encoder(family):
    torch.manual_seed(0)
    return A2MIMForMaskedImageModeling(FAMILIES[family]()).stock_encoder()


@pytest.mark.parametrize("family", FAMILIES)
def test_upernet_backbone_holds_the_encoder_weights_and_trains(family):
    encoder = _encoder(family)
    model, new_keys = build_upernet(encoder, SCENE_ID2LABEL, PLAIN)
    assert type(model) is UperNetForSemanticSegmentation
    backbone = model.backbone.state_dict()
    expected = _expected_backbone_tensors(family, encoder)
    for key, tensor in expected.items():
        assert torch.equal(backbone[key], tensor), key
    assert sorted(set(backbone) - set(expected)) == sorted(new_keys)
    assert all(key.startswith(("fpn.", "hidden_states_norms.")) for key in new_keys)
    assert bool(new_keys) == (family != "resnet")

    size = 32 if family == "beit" else 64
    torch.manual_seed(0)
    pixel_values = torch.randn(4, 3, size, size)
    labels = torch.randint(0, len(SCENE_ID2LABEL), (4, size, size))
    labels[:, :4] = 255
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(4):
        loss = model(pixel_values=pixel_values, labels=labels).loss
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < losses[0]


def test_plain_vit_encoder_is_refused_naming_the_beit_presets():
    from transformers import ViTConfig, ViTModel

    vit = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                             image_size=32, patch_size=4))
    with pytest.raises(ValueError, match="no ViTBackbone.*vit-base"):
        build_upernet(vit, SCENE_ID2LABEL, PLAIN)


def _mask_folder(root, masks: dict, image_size=(16, 16)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, mask in masks.items():
        PIL.Image.new("RGB", image_size, (10, 200, 30)).save(root / "images" / f"{stem}.jpg")
        mask.save(root / "masks" / f"{stem}.png")
    return root


def _check(root, num_labels=3, reduce_labels=False):
    args = SegmentationDataArguments(train_dir=str(root))
    train, _, image_column, mask_column = load_segmentation_splits(args, seed=0)
    return check_masks(train, image_column, mask_column, num_labels, reduce_labels, split="train")


def test_bad_masks_stop_with_one_line_naming_the_file(tmp_path):
    good = PIL.Image.fromarray(np.full((16, 16), 2, np.uint8), mode="L")
    assert len(_check(_mask_folder(tmp_path / "ok", {"a": good, "b": good}))) == 2
    rgb = PIL.Image.new("RGB", (16, 16))
    with pytest.raises(ValueError, match=r"Mask .*masks/b\.png.* is RGB; masks must be single-channel"):
        _check(_mask_folder(tmp_path / "rgb", {"a": good, "b": rgb}))
    small = PIL.Image.fromarray(np.zeros((8, 16), np.uint8), mode="L")
    with pytest.raises(ValueError, match=r"masks/a\.png.* is 16x8 but its image is 16x16"):
        _check(_mask_folder(tmp_path / "size", {"a": small}))
    beyond = np.zeros((16, 16), np.uint8)
    beyond[0, :2] = [3, 255]  # 255 is the ignore index and allowed; 3 is beyond 3 classes
    with pytest.raises(ValueError, match=r"masks/a\.png.* class id\(s\) \[3\] beyond the 3 classes"):
        _check(_mask_folder(tmp_path / "beyond", {"a": PIL.Image.fromarray(beyond, mode="L")}))
    # with --do_reduce_labels, raw id 3 is class 2 and 0 is ignored
    assert len(_check(tmp_path / "beyond", reduce_labels=True)) == 1
    with pytest.raises(ValueError, match=r"1 file\(s\) have no counterpart in masks/"):
        folder = _mask_folder(tmp_path / "unpaired", {"a": good})
        PIL.Image.new("RGB", (16, 16)).save(folder / "images" / "c.jpg")
        _check(folder)


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    from modeling_a2mim.data import SkippedImageCounter

    good = PIL.Image.fromarray(np.ones((16, 16), np.uint8), mode="L")
    folder = _mask_folder(tmp_path / "corrupt", {"a": good, "b": good})
    (folder / "images" / "b.jpg").write_bytes(b"not an image")
    args = SegmentationDataArguments(train_dir=str(folder))
    train, _, image_column, mask_column = load_segmentation_splits(args, seed=0)
    counter = SkippedImageCounter()
    kept = check_masks(train, image_column, mask_column, 3, False, split="train", counter=counter)
    assert len(kept) == 1 and counter.value == 1


def test_saved_dataset_with_id2label_json_and_inline_id2label(tmp_path):
    scenes = scene_dataset("train", 6, 32, seed=0).remove_columns(["objects", "image_id"])
    scenes.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "saved" / "id2label.json").write_text(json.dumps({str(k): v for k, v in SCENE_ID2LABEL.items()}))
    args = SegmentationDataArguments(dataset_name=str(tmp_path / "saved"), train_val_split=0.5)
    train, evaluation, image_column, mask_column = load_segmentation_splits(args, seed=0)
    assert (len(train), len(evaluation), image_column, mask_column) == (3, 3, "image", "annotation")
    from modeling_a2mim.segmentation.data import resolve_id2label

    assert resolve_id2label(args) == SCENE_ID2LABEL
    assert parse_id2label('{"0": "bg", "1": "cat"}') == {0: "bg", 1: "cat"}
    with pytest.raises(ValueError, match="without gaps"):
        parse_id2label('{"0": "bg", "2": "cat"}')


@pytest.mark.parametrize("storage", ["save_to_disk", "parquet"])
def test_a_classlabel_mask_column_names_the_classes(tmp_path, storage):
    """Masks stored as 2-D arrays of `ClassLabel` ids: the names come from the features (no --id2label, no
    id2label.json), the masks check and transform like PNG masks, and --id2label still wins."""
    from datasets import ClassLabel, Dataset, Features, Image, List

    from modeling_a2mim.segmentation.data import mask_array, resolve_id2label

    names = ["background", "cat", "dog"]
    masks = [np.zeros((12, 16), np.int64) for _ in range(4)]
    for index, mask in enumerate(masks):
        mask[2:6, 3:9], mask[8, :] = 1 + index % 2, -1  # a cat or a dog, and a row without label (ignored)
    features = Features({"image": Image(), "annotation": List(List(ClassLabel(names=names)))})
    rows = {"image": [PIL.Image.new("RGB", (16, 12), (9 * i, 40, 90)) for i in range(4)],
            "annotation": [mask.tolist() for mask in masks]}
    dataset = Dataset.from_dict(rows, features=features)
    if storage == "save_to_disk":
        dataset.save_to_disk(str(tmp_path / "saved"))
        args = SegmentationDataArguments(dataset_name=str(tmp_path / "saved"), train_val_split=0.5)
    else:
        dataset.to_parquet(str(tmp_path / "train.parquet"))
        args = SegmentationDataArguments(data_files=[str(tmp_path / "train.parquet")], train_val_split=0.5)
    train, evaluation, image_column, mask_column = load_segmentation_splits(args, seed=0)
    assert (len(train), len(evaluation), image_column, mask_column) == (2, 2, "image", "annotation")
    assert resolve_id2label(args, train.features[mask_column]) == {0: "background", 1: "cat", 2: "dog"}
    assert len(check_masks(train, image_column, mask_column, 3, False, split="train")) == 2
    assert (mask_array(train[0][mask_column])[8] == 255).all()  # ClassLabel's -1 is the ignore index
    with pytest.raises(ValueError, match=r"row 0 of the train split has class id\(s\) \[2\] beyond the 2 classes"):
        check_masks(train.select([0, 1]), image_column, mask_column, 2, False, split="train")
    out = SegmentationBatchTransform(image_column, mask_column, build_train_transform(16, [0] * 3, [1] * 3, PLAIN))(
        train[:2])
    assert all(labels.shape == (16, 16) and set(labels.unique().tolist()) <= {0, 1, 2, 255}
               for labels in out["labels"])
    args.id2label = '{"0": "bg", "1": "a", "2": "b"}'
    assert resolve_id2label(args, train.features[mask_column]) == {0: "bg", 1: "a", 2: "b"}
    with pytest.raises(ValueError, match="give the mask column a ClassLabel feature"):
        resolve_id2label(SegmentationDataArguments(data_files=[str(tmp_path / "x.parquet")]), Image())


def test_joint_train_transform_keeps_masks_aligned_and_pads_with_ignore():
    """A mask equal to the image's red channel stays equal to it through resize, crop and flip (photometric off)."""
    recipe = PLAIN.__class__(**{**PLAIN.to_dict(), "photometric_distortion": False, "min_resize_ratio": 0.5,
                                "max_resize_ratio": 0.5})
    transform = SegmentationBatchTransform("image", "mask", build_train_transform(32, [0, 0, 0], [1, 1, 1], recipe))
    values = np.repeat(np.arange(32, dtype=np.uint8)[None] * 4, 32, axis=0)  # stripes: nearest keeps the values
    image = PIL.Image.fromarray(np.stack([values] * 3, axis=-1))
    torch.manual_seed(0)
    out = transform({"image": [image], "mask": [PIL.Image.fromarray(values)]})
    pixels, labels = out["pixel_values"][0], out["labels"][0]
    assert pixels.shape == (3, 32, 32) and labels.shape == (32, 32)
    padded = labels == 255
    assert padded.any() and (pixels[0][padded] == 0).all()  # resized to 16 px, padded to the 32 px crop


def test_sliding_windows_cover_the_image_and_equal_whole_for_a_pixelwise_model():
    assert sliding_window_starts(64, 32, 21) == [0, 21, 32]
    assert sliding_window_starts(20, 32, 21) == [0]

    class PixelWise(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 5, 1)

        def forward(self, pixel_values):
            return type("Out", (), {"logits": self.conv(pixel_values)})()

    model, images = PixelWise(), torch.randn(2, 3, 50, 40)
    torch.testing.assert_close(slide_logits(model, images, 32, 21), model(images).logits)


def test_recipe_fills_unset_flags_and_flags_override(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, use_cpu=True)
    recipe = resolve_recipe(SegmentationRecipeArguments(recipe="upernet-vit-ade20k", layer_decay=0.75), args,
                            {"output_dir", "per_device_train_batch_size"})
    assert (recipe.layer_decay, recipe.head_channels, recipe.crop_size, recipe.eval_mode) == (0.75, 768, 512, "slide")
    assert args.max_steps == 160_000 and args.learning_rate == pytest.approx(1e-4 * 8 / 16)
    assert args.lr_scheduler_type == "polynomial" and args.lr_scheduler_kwargs == {"power": 1.0, "lr_end": 0.0}
    assert args.warmup_steps == pytest.approx(1500 / 160_000) and args.weight_decay == 0.05
    sgd = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=16, use_cpu=True, max_steps=10)
    resolve_recipe(SegmentationRecipeArguments(recipe="upernet-resnet-ade20k"), sgd, {"output_dir", "max_steps"})
    assert (sgd.optim, sgd.optim_args, sgd.max_steps, sgd.learning_rate) == ("sgd", "momentum=0.9", 10, 0.01)
    with pytest.raises(ValueError, match="Known recipes"):
        resolve_recipe(SegmentationRecipeArguments(recipe="upernet-swin"), args, set())
