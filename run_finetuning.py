#!/usr/bin/env python
"""Fine-tune (or evaluate) an A2MIM encoder for image classification with the seed papers' recipes.

The result is a stock `BeitForImageClassification` / `ViTForImageClassification` / `ResNetForImageClassification` /
`ConvNextForImageClassification` with its labels and image processor, usable by `pipeline("image-classification")`
without this package.

    python run_finetuning.py --model_name_or_path ./a2mim-vit --recipe beit-ft --output_dir ./vit-ft \
        --do_train --do_eval --per_device_train_batch_size 128
"""

import logging
import os

from transformers import TrainingArguments, set_seed

from modeling_a2mim.data import SkippedImageCounter
from modeling_a2mim.finetuning.arguments import (
    FinetuningDataArguments,
    ModelArguments,
    RecipeArguments,
    resolve_recipe,
)
from modeling_a2mim.finetuning.ema import EMACallback
from modeling_a2mim.finetuning.labels import (
    check_trainable_labels,
    label_map_to,
    resolve_label_column,
    samples_per_class,
)
from modeling_a2mim.finetuning.layer_decay import layer_decay_multiplier
from modeling_a2mim.finetuning.metrics import AccuracyMetrics
from modeling_a2mim.finetuning.mixing import BatchMixing, ClassificationLoss
from modeling_a2mim.finetuning.models import load_classifier, native_image_size, normalization
from modeling_a2mim.finetuning.trainer import FinetuningTrainer
from modeling_a2mim.finetuning.transforms import (
    ClassificationBatchTransform,
    build_eval_image_processor,
    build_train_transform,
    collate_classification,
)
from modeling_a2mim.training.arguments import prepare_splits
from modeling_a2mim.training.checkpoints import resolve_resume_checkpoint
from modeling_a2mim.training.cli import parse_script_arguments, run_main, setup_logging
from modeling_a2mim.training.files import share_output_files
from modeling_a2mim.training.finished_run import claim_output_dir
from modeling_a2mim.training.hub import check_hub_access, push_output_dir
from modeling_a2mim.training.model_card import write_model_card

logger = logging.getLogger(__name__)


def with_transform(dataset, transform: ClassificationBatchTransform, streaming: bool):
    """Apply the batch transform lazily (map-style) or on the fly while streaming."""
    if streaming:
        return dataset.map(transform, batched=True, remove_columns=[transform.image_column, transform.label_column])
    dataset.set_transform(transform)
    return dataset


def check_resolution(model, train_size: int, eval_size: int, native: int, from_checkpoint: bool) -> None:
    """ViT-like classifiers run at their position embeddings' resolution: refuse other sizes clearly."""
    if model.config.model_type not in ("beit", "vit"):
        return
    sizes = {train_size, eval_size}
    if sizes != {native} and (from_checkpoint or len(sizes) > 1):
        raise ValueError(
            f"A {model.config.model_type} classifier runs at one resolution ({native} px for this checkpoint), but "
            f"training/evaluation asks for {train_size}/{eval_size} px. Pass --train_image_size {native} "
            f"--eval_image_size {native} (recipes default to 224 px), or start from a checkpoint at that resolution."
        )


def load_labelled_splits(data_args, training_args, hub_kwargs):
    """`(train, eval or None, image column, label column, class names, raw label -> id map or None)`."""
    train_dataset, eval_dataset, image_column = prepare_splits(
        data_args, training_args.seed, need_train=training_args.do_train, **hub_kwargs
    )
    if training_args.do_eval and eval_dataset is None:
        raise ValueError(
            "--do_eval needs an evaluation split: the data has no validation/test split; add --validation_files FILE "
            "(or --validation_dir), or hold out a fraction with --train_val_split 0.1."
        )
    label_column, labels, label_map = resolve_label_column(
        train_dataset if training_args.do_train or eval_dataset is None else eval_dataset, data_args.label_column_name
    )
    if data_args.train_samples_per_class is not None:
        if data_args.streaming:
            raise ValueError("--train_samples_per_class needs the whole training set; drop --streaming.")
        train_dataset = samples_per_class(
            train_dataset, label_column, data_args.train_samples_per_class, training_args.seed, label_map
        )
    if training_args.do_train:
        check_trainable_labels(train_dataset, label_column, labels, label_map)
    return train_dataset, eval_dataset, image_column, label_column, labels, label_map


def build_image_processing(model, checkpoint_processor, recipe, from_checkpoint: bool):
    """`(training transform, evaluation image processor)` at the recipe's resolutions, else the checkpoint's.

    The checkpoint's own image processor is kept for evaluation when the recipe asks for nothing else; it is the
    one saved with the classifier, so `pipeline("image-classification")` preprocesses exactly as the evaluation.
    """
    native = native_image_size(model, checkpoint_processor)
    train_size = recipe.train_image_size or native
    eval_size = recipe.eval_image_size or recipe.train_image_size or native
    check_resolution(model, train_size, eval_size, native, from_checkpoint)
    mean, std = normalization(checkpoint_processor)
    if checkpoint_processor is not None and eval_size == native and recipe.eval_crop_ratio is None:
        image_processor = checkpoint_processor
    else:
        image_processor = build_eval_image_processor(eval_size, mean, std, recipe.eval_crop_ratio)
    train_transform = build_train_transform(train_size, mean, std, recipe)
    return train_transform, image_processor


def main(callbacks=()):
    model_args, data_args, recipe_args, training_args, given = parse_script_arguments(
        (ModelArguments, FinetuningDataArguments, RecipeArguments, TrainingArguments)
    )
    setup_logging(training_args, logger)
    training_args.remove_unused_columns = False  # the batch transform needs the raw image and label columns
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False  # pushed once at the end, see below
    if push_to_hub:
        check_hub_access(training_args.hub_model_id, training_args.hub_token, training_args.hub_private_repo)
    recipe = resolve_recipe(recipe_args, training_args, given)  # before the finished check: it sets the epochs
    output_lock, finished = claim_output_dir(training_args, training_args.do_train)
    if finished is not None:
        return
    set_seed(training_args.seed)

    hub_kwargs = {"cache_dir": model_args.cache_dir, "token": model_args.token}
    train_dataset, eval_dataset, image_column, label_column, labels, label_map = load_labelled_splits(
        data_args, training_args, hub_kwargs
    )

    model, checkpoint_processor, statistics_source = load_classifier(
        model_args.model_name_or_path,
        model_args.model_preset,
        labels=labels if training_args.do_train or model_args.model_preset else None,
        image_size=recipe.train_image_size,
        drop_path_rate=recipe.drop_path_rate,
        revision=model_args.model_revision,
        **hub_kwargs,
    )
    eval_label_map = None  # the evaluation data's classes as the model's ids (a subset of them is evaluated whole)
    if training_args.do_eval:
        eval_label_map = label_map_to(eval_dataset, label_column, list(model.config.id2label.values()))

    if training_args.gradient_checkpointing and not model.supports_gradient_checkpointing:
        raise ValueError(
            f"{type(model).__name__} has no gradient checkpointing in transformers; drop --gradient_checkpointing and "
            "lower --per_device_train_batch_size with a higher --gradient_accumulation_steps instead."
        )
    train_transform, image_processor = build_image_processing(
        model, checkpoint_processor, recipe, from_checkpoint=model_args.model_preset is None
    )
    counter = SkippedImageCounter()
    if training_args.do_train:
        transform = ClassificationBatchTransform(image_column, label_column, train_transform, counter, label_map)
        train_dataset = with_transform(train_dataset, transform, data_args.streaming)
    if training_args.do_eval:
        transform = ClassificationBatchTransform(image_column, label_column, image_processor, counter, eval_label_map)
        eval_dataset = with_transform(eval_dataset, transform, data_args.streaming)

    mixing = None
    if recipe.mixup_alpha or recipe.cutmix_alpha:
        mixing = BatchMixing(len(labels), recipe.mixup_alpha, recipe.cutmix_alpha, recipe.label_smoothing)
    use_layer_decay = recipe.layer_decay is not None and recipe.layer_decay != 1
    trainer = FinetuningTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        data_collator=collate_classification,
        compute_metrics=AccuracyMetrics(),
        processing_class=image_processor,
        loss_function=ClassificationLoss(recipe.loss, recipe.label_smoothing),
        mixing=mixing,
        optimizer_name=recipe.optimizer,
        lr_multiplier=layer_decay_multiplier(model, recipe.layer_decay) if use_layer_decay else None,
        callbacks=list(callbacks),
        skipped_images=counter,
    )
    checkpoint = None  # the EMA is resumed from the same checkpoint as the weights, see EMACallback
    if training_args.do_train:
        checkpoint = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    if recipe.ema_decay:
        trainer.add_callback(EMACallback(recipe.ema_decay, resume_from=checkpoint))

    all_metrics = {}
    if training_args.do_train:
        all_metrics.update(trainer.train_and_save(checkpoint))
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["skipped_images"] = counter.value
        # eval_loss is the loss of the recipe given to this run (in an eval-only run maybe not the one trained with)
        metrics["eval_loss_function"] = trainer.classification_loss.describe()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        all_metrics.update({k: v for k, v in metrics.items() if k.startswith("eval_")})

    if training_args.do_train and trainer.is_world_process_zero():
        write_finetuning_card(training_args, data_args, model_args, recipe, all_metrics, type(model).__name__,
                              statistics_source)
        share_output_files(training_args.output_dir)
        if push_to_hub:
            pushed = push_output_dir(training_args.output_dir, training_args.hub_model_id,
                                     token=training_args.hub_token, private=training_args.hub_private_repo,
                                     commit_message=f"Fine-tuned with recipe {recipe.name}")
            logger.info("Pushed %s to %s", ", ".join(pushed), training_args.hub_model_id)
    if output_lock is not None:
        output_lock.release()


def write_finetuning_card(training_args, data_args, model_args, recipe, metrics: dict, architecture: str,
                          statistics_source: str) -> None:
    """`README.md` next to the classifier: data, starting point, image statistics, effective recipe and final
    metrics."""
    start = model_args.model_name_or_path or f"random weights (the {model_args.model_preset} preset, from scratch)"
    training = {
        "architecture": architecture,
        "initialization": start,
        "image statistics": statistics_source,
        "recipe": f"{recipe.name}: {recipe.description}",
        **{key: value for key, value in recipe.to_dict().items()
           if key not in ("name", "description") and value is not None},
        "learning rate used": training_args.learning_rate,
        "per-device batch size": training_args.per_device_train_batch_size,
        "max steps": training_args.max_steps,
    }
    if data_args.train_samples_per_class:
        training["train images per class"] = data_args.train_samples_per_class
    write_model_card(
        training_args.output_dir,
        model_name=os.path.basename(os.path.normpath(training_args.hub_model_id or training_args.output_dir)),
        summary=f"An image classifier trained from {start} on {data_args.source_description} with "
        "`run_finetuning.py` of the A2MIM reference implementation. It is a stock transformers checkpoint: "
        "`pipeline('image-classification', model=...)` loads it without the A2MIM package.",
        dataset=data_args.source_description,
        training=training,
        metrics={key: value for key, value in metrics.items() if key.startswith("eval_") or key == "train_loss"},
        datasets=[data_args.dataset_name] if data_args.dataset_name else None,
        tags=["image-classification"],
        pipeline_tag="image-classification",
        auto_class="AutoModelForImageClassification",
        stock_checkpoint=True,
        repo_or_path=training_args.hub_model_id or training_args.output_dir,
    )


if __name__ == "__main__":
    run_main(main, "run_finetuning.py")
