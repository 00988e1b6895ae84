"""Shared training modules: transforms, masking collator, data splits, optimizer groups, callbacks, model card."""

import io
import os

import PIL.Image
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import TrainingArguments

from modeling_a2mim import A2MIMForMaskedImageModeling, BlockMaskGenerator
from modeling_a2mim.data import SkippedImageCounter
from modeling_a2mim.data.collator import MaskingCollator, mask_seed
from modeling_a2mim.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PretrainingTransform, crop_scale_for
from modeling_a2mim.training.arguments import DataArguments, prepare_splits
from modeling_a2mim.training.callbacks import SkippedImagesCallback
from modeling_a2mim.training.model_card import write_model_card
from modeling_a2mim.training.optimization import (
    build_parameter_groups,
    get_warmup_step_schedule,
    mask_token_lr_multiplier,
    no_weight_decay_names,
)
from modeling_a2mim.training.trainer import A2MIMTrainer

from .helpers import tiny_resnet_config, tiny_vit_config


def png_bytes(mode="RGB", size=(40, 30), color=None):
    image = PIL.Image.new(mode, size, color if color is not None else (10,) * len(mode))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


# ----- transforms ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_transform_any_mode_gives_normalized_rgb(mode):
    out = PretrainingTransform(32)(PIL.Image.new(mode, (50, 40)))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32


def test_eval_transform_normalizes_with_given_statistics():
    color = tuple(round(255 * m) for m in IMAGENET_MEAN)
    out = PretrainingTransform(16, mean=IMAGENET_MEAN, std=IMAGENET_STD, train=False)(PIL.Image.new("RGB", (20, 24), color))
    assert out.abs().max() < 0.01  # the mean colour maps to zero
    ones = PretrainingTransform(16, mean=(0, 0, 0), std=(1, 1, 1), train=False)(PIL.Image.new("RGB", (20, 24), "white"))
    assert torch.allclose(ones, torch.ones(3, 16, 16))


def test_recipe_crop_scale_per_family():
    assert crop_scale_for(tiny_vit_config()) == (0.67, 1.0)
    assert crop_scale_for(tiny_resnet_config()) == (0.8, 1.0)
    transform = PretrainingTransform.from_config(tiny_resnet_config())
    assert transform.transform.transforms[1].scale == (0.8, 1.0)


# ----- collator -----------------------------------------------------------------------------------------------------
def make_collator(**kwargs):
    return MaskingCollator(BlockMaskGenerator(32, 8, 0.6), PretrainingTransform(32), **kwargs)


def test_collator_shapes_mask_count_and_mixed_modes():
    examples = [{"image": png_bytes(m), "label": i} for i, m in enumerate(["RGB", "L", "RGBA", "LA"])]
    batch = make_collator(extra_columns={"label": "labels"})(examples)
    assert batch["pixel_values"].shape == (4, 3, 32, 32)
    assert batch["bool_masked_pos"].shape == (4, 4, 4) and batch["bool_masked_pos"].dtype == torch.bool
    assert batch["bool_masked_pos"].flatten(1).sum(1).tolist() == [10] * 4  # ceil(16 * 0.6)
    assert batch["labels"].tolist() == [0, 1, 2, 3]


def test_collator_skips_and_counts_unreadable_images():
    counter = SkippedImageCounter()
    collator = make_collator(counter=counter, extra_columns={"label": "labels"})
    examples = [{"image": png_bytes(), "label": 0}, {"image": {"bytes": b"not an image", "path": "bad.png"}, "label": 1},
                {"image": png_bytes("L"), "label": 2}]
    batch = collator(examples)
    assert batch["pixel_values"].shape[0] == 2 and batch["labels"].tolist() == [0, 2]
    assert counter.value == 1
    with pytest.raises(ValueError, match="Every image of a batch of 1 was unreadable"):
        collator([{"image": {"bytes": b"junk", "path": None}, "label": 0}])


def test_collator_wrong_column_is_a_clear_error():
    with pytest.raises(KeyError, match="--image_column_name"):
        make_collator(image_column="img")([{"image": png_bytes()}])


def test_collator_masks_are_reproducible_and_differ_per_rank(monkeypatch):
    examples = [{"image": png_bytes()} for _ in range(8)]
    first = make_collator(seed=3)(examples)["bool_masked_pos"]
    again = make_collator(seed=3)(examples)["bool_masked_pos"]
    assert torch.equal(first, again)
    monkeypatch.setenv("RANK", "1")
    other_rank = make_collator(seed=3)(examples)["bool_masked_pos"]
    assert not torch.equal(first, other_rank)
    assert mask_seed(3, 0, None) != mask_seed(3, 1, None) != mask_seed(3, 1, 12345)


def test_collator_workers_draw_different_masks():
    examples = [{"image": png_bytes()} for _ in range(4)]
    loader = torch.utils.data.DataLoader(examples * 2, batch_size=4, num_workers=2, collate_fn=make_collator(seed=0))
    masks = [batch["bool_masked_pos"] for batch in loader]
    assert not torch.equal(masks[0], masks[1])  # same images, two workers


def test_fixed_mask_collator_repeats_its_masks_after_restart_in_workers_too():
    examples = [{"image": png_bytes()} for _ in range(8)]
    collator = make_collator(seed=0, fixed_masks=True)
    first = collator(examples)["bool_masked_pos"]
    assert not torch.equal(first, collator(examples)["bool_masked_pos"])  # one pass draws on
    collator.restart()
    assert torch.equal(first, collator(examples)["bool_masked_pos"])

    def workers_pass():
        collator.restart()
        loader = torch.utils.data.DataLoader(examples, batch_size=4, num_workers=2, collate_fn=collator)
        return torch.cat([batch["bool_masked_pos"] for batch in loader])

    torch.manual_seed(0)
    passes = [workers_pass()]
    torch.manual_seed(1)  # a new worker seed, as at every epoch
    passes.append(workers_pass())
    assert torch.equal(*passes) and not torch.equal(passes[0][:4], passes[0][4:])  # workers still differ


def test_collator_accepts_pretransformed_examples():
    batch = make_collator()([{"pixel_values": torch.zeros(3, 32, 32)}] * 2)
    assert batch["pixel_values"].shape == (2, 3, 32, 32)


# ----- data splits --------------------------------------------------------------------------------------------------
def test_prepare_splits_embedded_default():
    train, eval_dataset, column = prepare_splits(DataArguments(max_eval_samples=10), seed=0)
    assert (len(train), len(eval_dataset), column) == (4000, 10, "image")
    assert set(train[0]["image"]) == {"bytes", "path"}  # left undecoded


def test_prepare_splits_held_out_fraction_and_max_samples(tmp_path):
    for i in range(10):
        PIL.Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(tmp_path / f"{i}.png")
    args = DataArguments(train_dir=str(tmp_path), train_val_split=0.2, max_train_samples=5)
    train, eval_dataset, column = prepare_splits(args, seed=0)
    assert (len(train), len(eval_dataset), column) == (5, 2, "image")


def test_prepare_splits_evaluation_only_needs_no_train_split(tmp_path):
    from modeling_a2mim.data.embedded import EMBEDDED_DATA_FILES

    args = DataArguments(validation_files=[EMBEDDED_DATA_FILES["test"]], max_eval_samples=3)
    train, eval_dataset, column = prepare_splits(args, seed=0, need_train=False)
    assert (train, len(eval_dataset), column) == (None, 3, "image")
    assert args.source_description == f"evaluation data {EMBEDDED_DATA_FILES['test']}"
    with pytest.raises(ValueError, match=r"no 'train' split \(it has \['validation'\]\); give training data"):
        prepare_splits(args, seed=0)


def test_prepare_splits_streaming_is_shuffled_and_not_sharded():
    args = DataArguments(streaming=True, max_train_samples=50, shuffle_buffer_size=50)
    train, _, _ = prepare_splits(args, seed=0)
    first = [hash(x["image"]["bytes"]) for x in train]
    train.set_epoch(1)
    second = [hash(x["image"]["bytes"]) for x in train]
    assert len(first) == 50 and sorted(first) == sorted(second) and first != second


def test_prepare_splits_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="--image_column_name 'picture' is not a column. Columns: image"):
        prepare_splits(DataArguments(image_column_name="picture"), seed=0)
    empty = tmp_path / "empty.parquet"
    import datasets

    datasets.Dataset.from_dict({"image": []}, features=datasets.Features({"image": datasets.Image()})).to_parquet(
        str(empty))
    (tmp_path / "folder").mkdir()
    for source in ({"data_files": [str(empty)]}, {"data_files": [str(empty)], "streaming": True},
                   {"train_dir": str(tmp_path / "folder")}):
        with pytest.raises(ValueError, match="The data source has no examples"):
            prepare_splits(DataArguments(**source), seed=0)
    with pytest.raises(ValueError, match="--train_val_split .* streamed"):
        prepare_splits(DataArguments(data_files=[str(empty)], streaming=True, train_val_split=0.1), seed=0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        DataArguments(train_val_split=1.5)


def test_data_arguments_are_subclassable():
    from dataclasses import dataclass, field

    @dataclass
    class LabelledDataArguments(DataArguments):
        label_column_name: str | None = field(default=None)

    args = LabelledDataArguments(label_column_name="label", train_val_split=0.1)
    assert args.label_column_name == "label" and args.train_val_split == 0.1


# ----- optimization -------------------------------------------------------------------------------------------------
def test_no_weight_decay_rules_vit():
    model = A2MIMForMaskedImageModeling(tiny_vit_config())
    names = no_weight_decay_names(model)
    for expected in ("a2mim.mask_token", "a2mim.encoder.embeddings.cls_token",
                     "a2mim.encoder.embeddings.position_embeddings", "a2mim.encoder.layers.0.lambda_1",
                     "a2mim.encoder.layers.1.lambda_2", "a2mim.encoder.layers.0.layernorm_before.weight",
                     "a2mim.encoder.layers.0.relative_position_bias.relative_position_bias_table",
                     "a2mim.encoder.layers.0.attention.q_proj.bias", "a2mim.encoder.layernorm.weight"):
        assert expected in names
    assert "a2mim.encoder.layers.0.attention.q_proj.weight" not in names


def test_parameter_groups_resnet_mask_token_multiplier():
    model = A2MIMForMaskedImageModeling(tiny_resnet_config())
    groups = build_parameter_groups(model, 1e-3, 0.05, mask_token_lr_multiplier(0.1))
    by_name = {name: g for g in groups for name in g["param_names"]}
    assert by_name["a2mim.mask_token"]["lr"] == pytest.approx(1e-4)
    assert by_name["a2mim.mask_token"]["weight_decay"] == 0.0
    bn = "a2mim.encoder.embedder.embedder.normalization.weight"
    assert by_name[bn]["weight_decay"] == 0.0 and by_name[bn]["lr"] == pytest.approx(1e-3)
    conv = "a2mim.encoder.embedder.embedder.convolution.weight"
    assert by_name[conv]["weight_decay"] == 0.05
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_warmup_step_schedule():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = get_warmup_step_schedule(optimizer, num_warmup_steps=3, num_training_steps=16, decay_at=0.875)
    lrs = []
    for _ in range(16):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[:3] == pytest.approx([0.25, 0.5, 0.75])
    assert lrs[3:14] == pytest.approx([1.0] * 11) and lrs[14:] == pytest.approx([0.1, 0.1])


@pytest.mark.parametrize("max_steps, warmup, expected", [
    (1, 0.05, [1.0, 0.0]),  # the segmentation recipes' warmup fraction at --max_steps 1: 1 warmup step of 1
    (2, 2, [0.0, 1.0, 0.0]),  # --warmup_steps equal to --max_steps
    (4, 1, [0.0, 1.0, 2 / 3, 1 / 3, 0.0]),  # a warmup shorter than the run: transformers' schedule, unchanged
])
def test_polynomial_schedule_leaves_at_least_one_step_of_decay(tmp_path, max_steps, warmup, expected):
    args = TrainingArguments(str(tmp_path), learning_rate=1.0, lr_scheduler_type="polynomial", warmup_steps=warmup,
                             lr_scheduler_kwargs={"power": 1.0, "lr_end": 0.0}, max_steps=max_steps, use_cpu=True,
                             report_to="none")
    trainer = A2MIMTrainer(model=torch.nn.Linear(2, 2), args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=max_steps)
    lrs = [trainer.lr_scheduler.get_last_lr()[0]]
    for _ in range(max_steps):  # transformers raised ZeroDivisionError at the last step of the first two
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        lrs.append(trainer.lr_scheduler.get_last_lr()[0])
    assert lrs == pytest.approx(expected)


def test_trainer_builds_recipe_groups(tmp_path):
    model = A2MIMForMaskedImageModeling(tiny_resnet_config())
    args = TrainingArguments(str(tmp_path), learning_rate=2e-3, weight_decay=0.05, use_cpu=True, report_to="none",
                             adam_beta2=0.95)
    trainer = A2MIMTrainer(model=model, args=args, lr_multiplier=mask_token_lr_multiplier(0.1), step_decay_at=0.5)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    lrs = sorted({g["lr"] for g in trainer.optimizer.param_groups})
    assert lrs == pytest.approx([2e-4, 2e-3]) and trainer.optimizer.defaults["betas"] == (0.9, 0.95)
    assert isinstance(trainer.lr_scheduler, torch.optim.lr_scheduler.LambdaLR)


def test_trainer_evaluates_on_the_same_crops_and_masks_every_time(tmp_path):
    from datasets import Dataset

    torch.manual_seed(0)
    model = A2MIMForMaskedImageModeling(tiny_vit_config())  # 32 px, 8 px mask blocks, as make_collator()
    noise = torch.randint(0, 255, (8, 40, 48, 3), dtype=torch.uint8).numpy()
    dataset = Dataset.from_dict({"image": [PIL.Image.fromarray(array) for array in noise]})
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none", per_device_eval_batch_size=4,
                             remove_unused_columns=False, label_names=["bool_masked_pos"], prediction_loss_only=True)
    eval_collator = MaskingCollator.from_config(model.config, train=False)
    assert eval_collator.fixed_masks and not MaskingCollator.from_config(model.config).fixed_masks
    fixed = A2MIMTrainer(model=model, args=args, eval_dataset=dataset, data_collator=make_collator(),
                         eval_data_collator=eval_collator)
    assert fixed.evaluate()["eval_loss"] == fixed.evaluate()["eval_loss"]
    drawn = A2MIMTrainer(model=model, args=args, eval_dataset=dataset, data_collator=make_collator())
    assert drawn.evaluate()["eval_loss"] != drawn.evaluate()["eval_loss"]  # the train collator draws new crops, masks


# ----- callbacks and model card -------------------------------------------------------------------------------------
def test_trainer_adds_the_skipped_image_count_to_every_log_entry(tmp_path):
    from transformers import TrainerCallback

    class Seen(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(dict(logs))

    seen = []
    counter = SkippedImageCounter()
    counter.add(3)
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none")
    trainer = A2MIMTrainer(model=torch.nn.Linear(2, 2), args=args, skipped_images=counter, callbacks=[Seen()])
    trainer.log({"loss": 1.0})
    assert seen[-1]["skipped_images"] == 3 and seen[-1]["loss"] == 1.0  # every logger sees it, wherever it is
    assert trainer.state.log_history[-1]["skipped_images"] == 3
    assert any(isinstance(callback, SkippedImagesCallback) for callback in trainer.callback_handler.callbacks)


def test_model_card_round_trip(tmp_path):
    write_model_card(str(tmp_path), "a2mim-vit-micro", "A2MIM pretraining.", "embedded Fashion-MNIST subset",
                     {"preset": "vit-micro", "steps": 300}, {"train_loss": 0.1234567}, datasets=["ILSVRC/imagenet-1k"])
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "transformers" and "a2mim" in card.data.tags
    assert card.data.datasets == ["ILSVRC/imagenet-1k"]
    assert "| preset | vit-micro |" in card.text and "| steps | 300 |" in card.text
    assert "| train_loss | 0.1235 |" in card.text
    assert "import modeling_a2mim" in card.text and "trust_remote_code=True" in card.text
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    write_model_card(str(tmp_path), "classifier", "A stock classifier.", "data", {},
                     auto_class="AutoModelForImageClassification", stock_checkpoint=True)
    stock = ModelCard.load(tmp_path / "README.md").text
    assert 'AutoModelForImageClassification.from_pretrained("classifier")' in stock
    assert "modeling_a2mim" not in stock and "trust_remote_code" not in stock


def test_script_arguments_report_the_names_given_by_flags_json_or_yaml(tmp_path):
    import json

    import yaml

    from modeling_a2mim.training.cli import parse_script_arguments

    data_args, training_args, given = parse_script_arguments(
        (DataArguments, TrainingArguments), ["--output_dir", str(tmp_path), "--learning_rate=0.5", "--streaming"]
    )
    assert given == {"output_dir", "learning_rate", "streaming"}
    assert training_args.learning_rate == 0.5 and data_args.streaming
    values = {"output_dir": str(tmp_path), "weight_decay": 0.2, "image_column_name": "img"}
    for name, dump in (("args.json", json.dumps), ("args.yaml", yaml.safe_dump)):
        (tmp_path / name).write_text(dump(values))
        data_args, training_args, given = parse_script_arguments((DataArguments, TrainingArguments),
                                                                 [str(tmp_path / name)])
        assert given == set(values) and training_args.weight_decay == 0.2 and data_args.image_column_name == "img"


def test_an_arguments_file_then_flags_that_override_it(tmp_path):
    from modeling_a2mim.training.cli import parse_script_arguments

    (tmp_path / "args.yaml").write_text(
        f"output_dir: {tmp_path}\nlearning_rate: 1e-3\nmax_steps: 100\nstreaming: true\nvalidation_split: 0.2\n"
        "data_files: [a.parquet, b.parquet]\nlr_scheduler_kwargs: {min_lr_rate: 0.1}\nhub_model_id: null\n"
    )
    data_args, training_args, given = parse_script_arguments(
        (DataArguments, TrainingArguments), [str(tmp_path / "args.yaml"), "--max_steps", "5", "--weight_decay=0.3"]
    )
    assert (training_args.max_steps, training_args.learning_rate, training_args.weight_decay) == (5, 1e-3, 0.3)
    assert data_args.data_files == ["a.parquet", "b.parquet"] and data_args.streaming
    assert data_args.train_val_split == 0.2 and training_args.lr_scheduler_kwargs == {"min_lr_rate": 0.1}
    assert given == {"output_dir", "learning_rate", "max_steps", "streaming", "train_val_split", "data_files",
                     "lr_scheduler_kwargs", "weight_decay"}
    with pytest.raises(ValueError, match=r"not used by the HfArgumentParser: \['--max_stepz', '5'\]"):
        parse_script_arguments((DataArguments, TrainingArguments), [str(tmp_path / "args.yaml"), "--max_stepz", "5"])


def test_transformers_example_flag_names_and_the_validation_split_alias(tmp_path):
    from modeling_a2mim.training.cli import parse_script_arguments

    flags = ["--output_dir", str(tmp_path), "--image_column_name", "img", "--max_train_samples", "4",
             "--max_eval_samples", "2", "--dataset_config_name", "tiny"]
    for name in ("--train_val_split", "--validation_split"):
        data_args, _, _ = parse_script_arguments((DataArguments, TrainingArguments), [*flags, name, "0.25"])
        assert data_args.train_val_split == 0.25
        assert (data_args.image_column_name, data_args.max_train_samples, data_args.max_eval_samples,
                data_args.dataset_config_name) == ("img", 4, 2, "tiny")


# ----- output files -------------------------------------------------------------------------------------------------
@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_atomic_files_and_finished_outputs_get_the_umask_permissions(tmp_path, umask_027):
    from modeling_a2mim.training.files import share_output_files, write_text_atomically

    write_text_atomically(tmp_path / "card.md", "hello")
    assert (tmp_path / "card.md").stat().st_mode & 0o777 == 0o640  # mkstemp alone gives 0600
    (tmp_path / "checkpoint-1").mkdir()
    for name, mode in (("model.safetensors", 0o600), ("checkpoint-1/ema.safetensors", 0o600), ("run.sh", 0o700)):
        (tmp_path / name).write_text("x")
        (tmp_path / name).chmod(mode)
    share_output_files(tmp_path)
    modes = {name: (tmp_path / name).stat().st_mode & 0o777
             for name in ("model.safetensors", "checkpoint-1/ema.safetensors", "run.sh")}
    assert modes == {"model.safetensors": 0o640, "checkpoint-1/ema.safetensors": 0o640, "run.sh": 0o740}
