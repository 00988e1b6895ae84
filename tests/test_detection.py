"""Object detection on A2MIM encoders: the detector's backbone weights and trainable set, the COCO metric on a
hand-checked case, one training step, the stock checkpoint without this package, resume and bad annotations."""

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import PIL.Image
import pytest
import torch
from datasets import Dataset, Features, Image, List, Value
from transformers import AutoConfig, AutoModelForObjectDetection

import run_object_detection
from modeling_a2mim import A2MIMForMaskedImageModeling
from modeling_a2mim.detection.data import DetectionBatchTransform, collate_detection, train_augmentation
from modeling_a2mim.detection.metrics import coco_metrics
from modeling_a2mim.detection.models import (
    DetectorSize,
    apply_backbone_freezing,
    backbone_stage,
    build_detector,
    detector_backbone,
)
from modeling_a2mim.training.cli import run_main
from modeling_a2mim.transfer import TransferSource, normalizing_image_processor

from .helpers import tiny_convnext_config, tiny_resnet_config, tiny_vit_config

TINY = DetectorSize(num_queries=5, d_model=16, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=32)
SIZES = {"rt_detr": dataclasses.replace(TINY, num_denoising=4), "conditional_detr": TINY}
LABELS = ["a", "b", "c"]
FAMILIES = {
    "resnet": (tiny_resnet_config, 64),
    "convnext": (tiny_convnext_config, 64),
    "beit": (lambda: tiny_vit_config(backbone={"num_hidden_layers": 4}), 32),
}
SCRIPT_ARGS = [
    "--image_square_size", "64", "--scene_size", "64", "--num_train_scenes", "16", "--num_eval_scenes", "8",
    "--num_queries", "5", "--d_model", "16", "--encoder_layers", "1", "--decoder_layers", "1",
    "--attention_heads", "2", "--ffn_dim", "32", "--per_device_train_batch_size", "4",
    "--per_device_eval_batch_size", "8", "--use_cpu", "--report_to", "none", "--dataloader_num_workers", "0",
    "--seed", "0",
]


def _source(family):
    config, size = FAMILIES[family]
    encoder = A2MIMForMaskedImageModeling(config()).stock_encoder()
    return TransferSource(encoder, normalizing_image_processor(size), "ImageNet statistics", f"tiny {family}")


def _batch(processor, size, count=2):
    """`count` random images with two boxes each, through the script's batch transform and collator."""
    rng = np.random.default_rng(0)
    images = [PIL.Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(count)]
    objects = [{"bbox": [[2.0, 3.0, size / 2, size / 3], [size / 2, size / 2, size / 4, size / 4]],
                "category": [0, 2], "area": [size * size / 6, size * size / 16]} for _ in range(count)]
    transform = DetectionBatchTransform("image", processor)
    outputs = transform({"image": images, "objects": objects, "image_id": list(range(count))})
    return collate_detection([{key: outputs[key][i] for key in outputs} for i in range(count)])


def run_script(*args):
    with mock.patch.object(sys, "argv", ["run_object_detection.py", *args]):
        return run_object_detection.main()


def test_coco_metrics_on_a_hand_checked_case():
    # Image 1: two class-0 objects; a perfect hit (score 0.9) and a miss elsewhere (0.8). Precision 1 up to recall
    # 0.5, then nothing: COCO's 101-point AP is 51/101 at every IoU threshold. Image 2: class 1 found exactly (AP 1).
    predictions = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]), "scores": torch.tensor([0.9, 0.8]),
         "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([[5.0, 5, 40, 40]]), "scores": torch.tensor([0.7]), "labels": torch.tensor([1])},
    ]
    targets = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([[5.0, 5, 40, 40]]), "labels": torch.tensor([1])},
    ]
    metrics = coco_metrics(predictions, targets, {0: "a", 1: "b"})
    assert metrics["map_a"] == pytest.approx(51 / 101, abs=1e-4)
    assert metrics["map_b"] == pytest.approx(1.0)
    assert metrics["map"] == metrics["map_50"] == metrics["map_75"] == pytest.approx((51 / 101 + 1) / 2, abs=1e-4)
    # COCO sizes: class a's boxes are small (< 32x32 px), class b's medium
    assert (metrics["map_small"], metrics["map_medium"]) == (pytest.approx(51 / 101, abs=1e-4), pytest.approx(1.0))
    assert metrics["mar_100"] == pytest.approx((0.5 + 1) / 2)


@pytest.mark.parametrize("detector", SIZES)
@pytest.mark.parametrize("family", FAMILIES)
def test_the_detector_backbone_holds_the_encoder_and_every_stage_trains(family, detector):
    source = _source(family)
    model, processor, new = build_detector(source, detector, LABELS, SIZES[detector], FAMILIES[family][1])
    backbone = detector_backbone(model)
    if detector == "conditional_detr":  # single-scale: ResNet / ConvNeXt stage 4 (its norm is the encoder's), BEiT's
        assert new == [] and backbone.out_features == [backbone.stage_names[-1]]  # last block
    else:  # RT-DETR: strides 8, 16, 32 of the CNNs (the new norms of ConvNeXt's stages 2-3), BEiT's pyramid neck
        assert backbone.out_features == (["stage1", "stage2", "stage3", "stage4"] if family == "beit" else
                                         ["stage2", "stage3", "stage4"])
        assert {".".join(key.split(".")[:2]) for key in new} == {
            "resnet": set(), "convnext": {"hidden_states_norms.stage2", "hidden_states_norms.stage3"},
            "beit": {"fpn.fpn1", "fpn.fpn2"}}[family]  # BEiT's x1 level is the identity, its x0.5 a max pool
    state = backbone.state_dict()
    for key, tensor in source.encoder.state_dict().items():
        if key.endswith("num_batches_tracked") or key.startswith("pooler."):
            continue  # frozen BatchNorm keeps no counter; BEiT's final norm is not used
        name = f"beit.{key}" if family == "beit" else key
        if family == "convnext" and key.startswith("layernorm."):
            name = "hidden_states_norms.stage4." + key.removeprefix("layernorm.")
        assert torch.equal(state[name], tensor), name
    if family == "resnet" and detector == "conditional_detr":  # the DETR family's own freeze leaves nothing of a
        assert not any(parameter.requires_grad for parameter in backbone.parameters())  # ResNet trainable ...
    protocol = apply_backbone_freezing(model, -1)  # ... the protocol trains every stage
    assert "every stage trains" in protocol
    norms = {("resnet", "rt_detr"): "BatchNorm trains (statistics of each process's batch)",
             ("resnet", "conditional_detr"): "BatchNorm frozen with the encoder's statistics",
             ("beit", "rt_detr"): "BatchNorm trains (statistics of each process's batch), LayerNorm trains"}
    assert norms.get((family, detector), "); LayerNorm trains") in protocol
    assert all(parameter.requires_grad for parameter in backbone.parameters())
    model(**_batch(processor, FAMILIES[family][1])).loss.backward()
    without_gradient = [name for name, parameter in backbone.named_parameters()
                        if parameter.grad is None or not parameter.grad.abs().sum() > 0]
    assert without_gradient == []
    apply_backbone_freezing(model, 1)
    for name, parameter in backbone.named_parameters():
        assert parameter.requires_grad == (backbone_stage(backbone.config.model_type, name) not in (0, 1)), name


@pytest.mark.parametrize("detector", SIZES)
def test_a_beit_backbone_detects_at_a_size_other_than_its_pretraining_resolution(detector, caplog):
    with caplog.at_level("WARNING"):
        model, processor, _ = build_detector(_source("beit"), detector, LABELS, SIZES[detector], 48)
    assert "pretrained at 32 px; at 48 px images (--image_square_size) its position embeddings" in caplog.text
    assert model.config.backbone_config.image_size == 32  # the tables keep their shape, interpolated per forward
    apply_backbone_freezing(model, -1)
    model.eval()  # RT-DETR adds its denoising queries to the outputs in training
    batch = _batch(processor, 48)
    assert batch["pixel_values"].shape[-2:] == (48, 48)
    outputs = model(**batch)
    outputs.loss.backward()
    assert outputs.logits.shape == (2, TINY.num_queries, len(LABELS))
    embeddings = detector_backbone(model).beit.embeddings.position_embeddings
    assert embeddings.grad is not None and embeddings.grad.abs().sum() > 0


@pytest.mark.parametrize("detector", SIZES)
def test_one_training_step_lowers_the_loss_on_a_batch(detector):
    model, processor, _ = build_detector(_source("resnet"), detector, LABELS, SIZES[detector], 64)
    apply_backbone_freezing(model, -1)
    model.eval()  # no dropout, no denoising queries, BatchNorm statistics fixed: the two losses are of one function
    batch = _batch(processor, 64)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert model(**batch).loss < loss.detach()


def test_augmentation_moves_boxes_with_the_image():
    torch.manual_seed(1)
    flip = DetectionBatchTransform("image", None, augmentation=train_augmentation())
    image = PIL.Image.new("RGB", (40, 20))
    for _ in range(8):
        _, target = flip._example(image, {"bbox": [[2.0, 4.0, 10.0, 6.0]], "category": [1]}, 0)
        assert target["annotations"][0]["bbox"] in ([2.0, 4.0, 10.0, 6.0], [28.0, 4.0, 10.0, 6.0])


@pytest.fixture(scope="module", params=list(SIZES))
def trained(request, tmp_path_factory):
    """The script's CPU default at a tiny size with each detector, 4 steps from a saved A2MIM ResNet, saving at steps 2
    and 4. Yields `(root, output folder, detector flags)`."""
    root = tmp_path_factory.mktemp("detection")
    A2MIMForMaskedImageModeling(tiny_resnet_config()).save_pretrained(root / "a2mim")
    output = root / "out"
    flags = ["--detector", request.param, *(["--num_denoising", "4"] if request.param == "rt_detr" else [])]
    run_script("--model_name_or_path", str(root / "a2mim"), "--output_dir", str(output), "--do_train", "--do_eval",
               "--max_steps", "4", "--save_steps", "2", *flags, *SCRIPT_ARGS)
    return root, output, flags


def test_the_script_writes_a_stock_detector_with_card_picture_and_metrics(trained):
    _, output, _ = trained
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "detections.png",
                 "checkpoint-2/detections.png", "checkpoint-4/detections.png"):
        assert (output / name).is_file(), name
    results = json.loads((output / "eval_results.json").read_text())
    assert {"eval_map", "eval_map_50", "eval_map_75", "eval_map_small", "eval_mar_100"} <= set(results)
    card = (output / "README.md").read_text()
    assert "every stage trains" in card and "eval_map" in card
    # The card tells the user to call requires_grad_(True) exactly where the stock class, built from the saved config,
    # freezes backbone parameters itself (the DETR family's stage-name match on an HF ResNet)
    rebuilt = AutoModelForObjectDetection.from_config(AutoConfig.from_pretrained(output))
    frozen_by_the_class = not all(p.requires_grad for p in detector_backbone(rebuilt).parameters())
    assert ("requires_grad_(True)" in card) == frozen_by_the_class


@pytest.mark.parametrize("detector", SIZES)
def test_the_card_shows_the_built_size_where_flags_keep_the_default(detector, tmp_path):
    """Size flags left unset (`None`: the detector's transformers default) appear in the card as the built model's
    values, never as None; the training length is the steps when --max_steps is set, else the epochs."""
    size = DetectorSize(d_model=16, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=32)
    model, _, _ = build_detector(_source("resnet"), detector, LABELS, size, 64)
    args = run_object_detection.DetectorArguments(detector=detector, d_model=16)
    training = mock.Mock(output_dir=str(tmp_path), hub_model_id=None, learning_rate=1e-3,
                         per_device_train_batch_size=4, max_steps=-1, num_train_epochs=3.0)
    data = mock.Mock(image_square_size=64, source_description="scenes", dataset_name=None)
    run_object_detection.write_detection_card(training, data, args, "scratch", "every stage trains", {}, model)
    rows = dict(re.findall(r"^\| (.+?) \| (.+?) \|$", (tmp_path / "README.md").read_text(), re.MULTILINE))
    assert rows["num_queries"] == str(model.config.num_queries) == "300"  # both detectors' transformers default
    assert rows["d_model"] == "16" and rows["decoder_layers"] == "1" and rows["attention_heads"] == "2"
    assert ("num_denoising" in rows) == (detector == "rt_detr")
    assert rows["training length"] == "3 epochs" and "None" not in rows.values()


def test_the_saved_detector_loads_and_trains_without_this_package(trained, tmp_path):
    _, output, flags = trained
    code = textwrap.dedent(f"""
        import sys
        sys.modules["modeling_a2mim"] = None  # importing it fails: plain transformers only
        import PIL.Image, torch
        from transformers import AutoImageProcessor, AutoModelForObjectDetection, pipeline
        model = AutoModelForObjectDetection.from_pretrained({str(output)!r})
        backbone = model.model.backbone.model
        trainable_on_load = sum(p.requires_grad for p in backbone.parameters())
        processor = AutoImageProcessor.from_pretrained({str(output)!r})
        inputs = processor(images=[PIL.Image.new("RGB", (64, 64), "gray")], return_tensors="pt",
                           annotations=[{{"image_id": 0, "annotations": [
                               {{"bbox": [4, 4, 20, 20], "category_id": 1, "area": 400, "iscrowd": 0}}]}}])
        model(**inputs).loss.backward()
        with_gradient = sum(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in backbone.parameters())
        rebuilt = AutoModelForObjectDetection.from_config(model.config).model.backbone.model
        frozen_by_init = sum(p.requires_grad for p in rebuilt.parameters())
        rebuilt.requires_grad_(True)  # what the README tells the user to call after building from a config
        after_call = sum(p.requires_grad for p in rebuilt.parameters())
        detections = pipeline("object-detection", model={str(output)!r})(PIL.Image.new("RGB", (64, 64)),
                                                                         threshold=0.0)
        print(type(model).__name__, len(list(backbone.parameters())), trainable_on_load, with_gradient,
              frozen_by_init, after_call, sorted(detections[0]) if detections else None)
    """)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    name, total, trainable_on_load, with_gradient, frozen_by_init, after_call, keys = result.stdout.split(maxsplit=6)
    assert name == ("ConditionalDetrForObjectDetection" if "conditional_detr" in flags else
                    "RTDetrForObjectDetection") and int(total) > 0
    # transformers 5.24: from_pretrained's loaded weights replace the parameters __init__ froze, so every backbone
    # parameter of a saved detector trains (the protocol's -1) and gets a gradient ...
    assert trainable_on_load == with_gradient == total
    # ... but a Conditional DETR built from its config has its ResNet frozen whole until the README's call (RT-DETR
    # freezes nothing)
    assert frozen_by_init == ("0" if "conditional_detr" in flags else total) and after_call == total
    assert keys.strip() == "['box', 'label', 'score']"


def test_a_finished_run_resumes_from_its_last_checkpoint(trained, caplog):
    root, output, flags = trained
    with caplog.at_level("WARNING"):
        run_script("--model_name_or_path", str(root / "a2mim"), "--output_dir", str(output), "--do_train",
                   "--max_steps", "6", "--save_steps", "2", *flags, *SCRIPT_ARGS)
    assert f"Resuming from {output / 'checkpoint-4'}" in caplog.text
    if "conditional_detr" in flags:  # the tiny ResNet's 12 convolutions; its BatchNorms are frozen buffers
        assert "Detector: ConditionalDetrForObjectDetection from the encoder of the A2MIM checkpoint" in caplog.text
        assert "every stage trains (12 of 12 backbone parameter tensors train); BatchNorm frozen" in caplog.text
    else:  # the convolutions and the weight and bias of their 12 BatchNorms
        assert "Detector: RTDetrForObjectDetection from the encoder of the A2MIM checkpoint" in caplog.text
        assert "every stage trains (36 of 36 backbone parameter tensors train); BatchNorm trains" in caplog.text
    state = json.loads((output / "trainer_state.json").read_text())
    assert state["global_step"] == 6


def _write_bad_data(tmp_path, case):
    objects = [{"bbox": [[2.0, 2.0, 10.0, 10.0]], "category": [0], "area": [100.0]} for _ in range(3)]
    if case == "box outside":
        objects[1]["bbox"] = [[40.0, 2.0, 30.0, 10.0]]
    if case == "category beyond":
        objects[2]["category"] = [12]
    rows = {"image_id": [10, 11, 12], "image": [PIL.Image.new("RGB", (48, 48))] * 3, "objects": objects}
    features = {"image_id": Value("int64"), "image": Image(),
                "objects": {"bbox": List(List(Value("float32"))), "category": List(Value("int64")),
                            "area": List(Value("float32"))}}
    if case == "missing objects":
        del rows["objects"], features["objects"]
    path = tmp_path / "train.parquet"
    Dataset.from_dict(rows, features=Features(features)).to_parquet(str(path))
    return path


@pytest.mark.parametrize("case, message", [
    ("box outside", r"image_id=11: box \[40.0, 2.0, 30.0, 10.0\] .* lies outside its 48x48 image"),
    ("missing objects", r"has no 'objects' column \(it has image_id, image\)"),
])
def test_bad_annotations_stop_with_one_line_naming_the_example(case, message, tmp_path):
    path = _write_bad_data(tmp_path, case)
    with mock.patch.object(sys, "argv", ["run_object_detection.py", "--model_preset", "resnet-micro",
                                         "--data_files", str(path), "--output_dir", str(tmp_path / "out"),
                                         "--do_train", "--max_steps", "1", *SCRIPT_ARGS]), \
            pytest.raises(SystemExit) as stop:
        run_main(run_object_detection.main, "run_object_detection.py")
    assert "\n" not in str(stop.value)
    assert str(stop.value).startswith("run_object_detection.py: error: ")
    assert re.search(message, str(stop.value)), str(stop.value)


def test_a_category_beyond_the_saved_detectors_labels_names_the_example(trained, tmp_path):
    _, output, _ = trained
    path = _write_bad_data(tmp_path, "category beyond")
    with mock.patch.object(sys, "argv", ["run_object_detection.py", "--model_name_or_path", str(output),
                                         "--validation_files", str(path), "--output_dir", str(tmp_path / "out"),
                                         "--do_eval", *SCRIPT_ARGS]), \
            pytest.raises(SystemExit) as stop:
        run_main(run_object_detection.main, "run_object_detection.py")
    assert "image_id=12: category 12 is beyond the model's 10 classes" in str(stop.value)


def test_coco_folders_are_read_with_their_category_names(tmp_path):
    from modeling_a2mim.detection.data import coco_folder_dataset

    PIL.Image.new("RGB", (32, 24)).save(tmp_path / "a.png")
    (tmp_path / "annotations.json").write_text(json.dumps({
        "images": [{"id": 5, "file_name": "a.png", "width": 32, "height": 24}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 1, "name": "dog"}],
        "annotations": [{"id": 1, "image_id": 5, "category_id": 3, "bbox": [1, 2, 10, 8], "area": 80}],
    }))
    dataset = coco_folder_dataset(str(tmp_path))
    assert dataset.features["objects"]["category"].feature.names == ["dog", "cat"]
    assert dataset[0]["objects"] == {"bbox": [[1.0, 2.0, 10.0, 8.0]], "category": [1], "area": [80.0]}
    assert dataset[0]["image_id"] == 5 and dataset[0]["image"].size == (32, 24)



def test_streaming_is_refused_with_one_line():
    from modeling_a2mim.detection.data import DetectionDataArguments, load_detection_dataset

    with pytest.raises(ValueError, match="reads map-style data.*drop --streaming"):
        load_detection_dataset(DetectionDataArguments(streaming=True), seed=0)


def test_an_image_folder_with_metadata_jsonl_is_read_with_its_objects(tmp_path):
    from modeling_a2mim.detection.data import DetectionDataArguments, category_names, load_detection_dataset

    rows = []
    for index in range(2):
        PIL.Image.new("RGB", (20, 20)).save(tmp_path / f"{index}.png")
        rows.append({"file_name": f"{index}.png", "image_id": index,
                     "objects": {"bbox": [[1.0, 1.0, 5.0, 5.0]], "category": [index * 2], "area": [25.0]}})
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    train = load_detection_dataset(DetectionDataArguments(train_dir=str(tmp_path)), seed=0)["train"]
    assert sorted(example["objects"]["category"][0] for example in train) == [0, 2]
    assert category_names(train) == ["0", "1", "2"]  # integer categories without names: ids up to the largest


def test_denoising_queries_are_refused_for_a_detector_without_them():
    from modeling_a2mim.detection.models import detector_config, single_scale_backbone_config

    backbone_config = single_scale_backbone_config(_source("resnet").encoder.config)
    refusal = r"^--num_denoising is RT-DETR's \(--detector rt_detr\), not detr's; drop it\.$"
    with pytest.raises(ValueError, match=refusal):
        detector_config("detr", backbone_config, LABELS, SIZES["rt_detr"])
    assert detector_config("rt_detr", backbone_config, LABELS, SIZES["rt_detr"]).num_denoising == 4
