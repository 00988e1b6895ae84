#!/usr/bin/env python
"""Train (or evaluate) a UperNet semantic segmentation model on an A2MIM encoder, with the A2MIM paper's protocols.

The result is a stock `UperNetForSemanticSegmentation` whose backbone is the family's stock `BeitBackbone` (with the
Feature2Pyramid neck) / `ResNetBackbone` / `ConvNextBackbone`, saved with a stock `SegformerImageProcessor`: both
`AutoModelForSemanticSegmentation` and `pipeline("image-segmentation")` load it without this package.

    python run_semantic_segmentation.py --model_name_or_path ./a2mim-vit --recipe upernet-vit-ade20k \
        --dataset_name scene_parse_150 --do_reduce_labels --output_dir ./vit-ade20k --do_train --do_eval
"""

import logging
import os

from transformers import TrainingArguments, set_seed

from modeling_a2mim.backbones import note_vit_resolution
from modeling_a2mim.data import SkippedImageCounter
from modeling_a2mim.finetuning.arguments import ModelArguments
from modeling_a2mim.finetuning.layer_decay import layer_decay_multiplier
from modeling_a2mim.finetuning.transforms import image_processor_size
from modeling_a2mim.segmentation.arguments import (
    SegmentationDataArguments,
    SegmentationRecipeArguments,
    resolve_recipe,
)
from modeling_a2mim.segmentation.data import check_masks, load_segmentation_splits, resolve_id2label
from modeling_a2mim.segmentation.metrics import SegmentationMetrics
from modeling_a2mim.segmentation.models import build_upernet, is_upernet_checkpoint, load_upernet
from modeling_a2mim.segmentation.trainer import SegmentationTrainer
from modeling_a2mim.segmentation.transforms import (
    SegmentationBatchTransform,
    build_eval_image_processor,
    build_train_transform,
    collate_segmentation,
)
from modeling_a2mim.segmentation.visualization import SegmentationPictureCallback
from modeling_a2mim.training.checkpoints import resolve_resume_checkpoint
from modeling_a2mim.training.cli import parse_script_arguments, run_main, setup_logging
from modeling_a2mim.training.files import share_output_files
from modeling_a2mim.training.finished_run import claim_output_dir
from modeling_a2mim.training.hub import check_hub_access, push_output_dir
from modeling_a2mim.training.model_card import write_model_card
from modeling_a2mim.transfer import load_transfer_source

logger = logging.getLogger(__name__)
PICTURE_IMAGES = 4


def load_model(model_args, data_args, recipe, mask_feature, hub_kwargs):
    """`(UperNet, image statistics (mean, std), crop size, id2label, where the weights came from)`; `mask_feature` is
    the data's mask column feature (its `ClassLabel` names the classes)."""
    hub = {**hub_kwargs, "revision": model_args.model_revision}
    if is_upernet_checkpoint(model_args.model_name_or_path, **hub):
        model, saved_processor = load_upernet(model_args.model_name_or_path, **hub)
        id2label = {int(k): v for k, v in model.config.id2label.items()}
        try:
            data_labels = resolve_id2label(data_args, mask_feature, **hub_kwargs)
        except ValueError:
            data_labels = id2label  # evaluating on data that names no classes: the model's
        if data_labels != id2label:
            raise ValueError(f"{model_args.model_name_or_path} segments {list(id2label.values())} but the data has "
                             f"classes {list(data_labels.values())}; give matching --id2label and data.")
        crop = recipe.crop_size or image_processor_size(saved_processor)
        statistics = (list(saved_processor.image_mean), list(saved_processor.image_std))
        return model, statistics, crop, id2label, f"the UperNet checkpoint {model_args.model_name_or_path}"
    id2label = resolve_id2label(data_args, mask_feature, **hub_kwargs)
    source = load_transfer_source(model_args.model_name_or_path, model_args.model_preset,
                                  image_size=recipe.crop_size if model_args.model_preset else None, **hub)
    crop = recipe.crop_size or image_processor_size(source.image_processor)
    model, _ = build_upernet(source.encoder, id2label, recipe)
    statistics = (list(source.image_processor.image_mean), list(source.image_processor.image_std))
    return model, statistics, crop, id2label, f"{source.description} (image statistics: {source.statistics_source})"


def main(callbacks=()):
    model_args, data_args, recipe_args, training_args, given = parse_script_arguments(
        (ModelArguments, SegmentationDataArguments, SegmentationRecipeArguments, TrainingArguments)
    )
    setup_logging(training_args, logger)
    training_args.remove_unused_columns = False  # the batch transform needs the raw image and mask columns
    training_args.label_names = ["labels"]
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False  # pushed once at the end
    if push_to_hub:
        check_hub_access(training_args.hub_model_id, training_args.hub_token, training_args.hub_private_repo)
    if training_args.do_train and training_args.per_device_train_batch_size < 2:
        raise ValueError("UperNet's pyramid pooling has BatchNorm on a 1x1 map, which cannot train on one image per "
                         "device: use --per_device_train_batch_size 2 or more (and fewer --gradient_accumulation_steps).")
    recipe = resolve_recipe(recipe_args, training_args, given)  # before the finished check: it sets --max_steps
    output_lock, finished = claim_output_dir(training_args, training_args.do_train)
    if finished is not None:
        return
    set_seed(training_args.seed)
    hub_kwargs = {"cache_dir": model_args.cache_dir, "token": model_args.token}

    if training_args.gradient_checkpointing:
        raise ValueError("UperNet has no gradient checkpointing in transformers; drop --gradient_checkpointing and "
                         "lower --per_device_train_batch_size with a higher --gradient_accumulation_steps instead.")
    train_dataset, eval_dataset, image_column, mask_column = load_segmentation_splits(
        data_args, training_args.seed, need_train=training_args.do_train, **hub_kwargs
    )
    if training_args.do_eval and eval_dataset is None:
        raise ValueError("--do_eval needs an evaluation split: the data has no validation/test split; add "
                         "--validation_dir or --validation_files, or hold out a fraction with --train_val_split 0.1.")
    mask_feature = (train_dataset if train_dataset is not None else eval_dataset).features[mask_column]

    model, (mean, std), crop, id2label, start = load_model(model_args, data_args, recipe, mask_feature, hub_kwargs)
    eval_size = recipe_args.eval_image_size or crop
    stride = recipe.eval_stride or max(1, 2 * crop // 3)
    note_vit_resolution(model.config.backbone_config, {crop, eval_size},
                        f"{crop} px crops ({eval_size} px evaluation)")
    logger.info("UperNet from %s; crops %d px, evaluation %s at %d px.", start, crop, recipe.eval_mode, eval_size)
    counter = SkippedImageCounter()
    checked = dict(num_labels=len(id2label), reduce_labels=data_args.do_reduce_labels, counter=counter)
    image_processor = build_eval_image_processor(eval_size, mean, std)
    if training_args.do_train:
        train_dataset = check_masks(train_dataset, image_column, mask_column, split="train", **checked)
        train_dataset.set_transform(SegmentationBatchTransform(
            image_column, mask_column, build_train_transform(crop, mean, std, recipe), counter,
            data_args.do_reduce_labels))
    if eval_dataset is not None:
        eval_dataset = check_masks(eval_dataset, image_column, mask_column, split="eval", **checked)
        eval_dataset.set_transform(SegmentationBatchTransform(image_column, mask_column, image_processor, counter,
                                                              data_args.do_reduce_labels))

    picture = None
    held = eval_dataset if eval_dataset is not None else train_dataset
    if held is not None:
        examples = collate_segmentation([held[i] for i in range(min(PICTURE_IMAGES, len(held)))])
        picture = SegmentationPictureCallback(examples["pixel_values"], examples["labels"], mean, std, id2label,
                                              recipe.eval_mode, crop, stride)
    metrics = SegmentationMetrics(id2label)
    use_layer_decay = recipe.layer_decay is not None and recipe.layer_decay != 1
    trainer = SegmentationTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        data_collator=collate_segmentation,
        compute_metrics=metrics,
        preprocess_logits_for_metrics=metrics.preprocess_logits_for_metrics,
        processing_class=image_processor,
        lr_multiplier=layer_decay_multiplier(model.backbone, recipe.layer_decay) if use_layer_decay else None,
        callbacks=[*([picture] if picture is not None else []), *callbacks],
        skipped_images=counter,
        eval_mode=recipe.eval_mode,
        crop_size=crop,
        eval_stride=stride,
    )

    all_metrics = {}
    if training_args.do_train:
        checkpoint = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
        all_metrics.update(trainer.train_and_save(checkpoint))
        if picture is not None and trainer.is_world_process_zero():
            picture.save(trainer.model, training_args.output_dir)
    if training_args.do_eval:
        eval_metrics = {**trainer.evaluate(), "skipped_images": counter.value}
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        all_metrics.update({k: v for k, v in eval_metrics.items() if k.startswith("eval_")})

    if training_args.do_train and trainer.is_world_process_zero():
        write_segmentation_card(training_args, data_args, start, recipe, crop, eval_size, all_metrics,
                                type(model.backbone).__name__)
        share_output_files(training_args.output_dir)
        if push_to_hub:
            pushed = push_output_dir(training_args.output_dir, training_args.hub_model_id,
                                     token=training_args.hub_token, private=training_args.hub_private_repo,
                                     commit_message=f"UperNet trained with recipe {recipe.name}")
            logger.info("Pushed %s to %s", ", ".join(pushed), training_args.hub_model_id)
    if output_lock is not None:
        output_lock.release()


def write_segmentation_card(training_args, data_args, start: str, recipe, crop: int, eval_size: int, metrics: dict,
                            backbone: str) -> None:
    """`README.md` next to the model: data, starting point, effective recipe and final metrics."""
    training = {
        "architecture": f"UperNetForSemanticSegmentation ({backbone})",
        "initialization": start,
        "recipe": f"{recipe.name}: {recipe.description}",
        **{key: value for key, value in recipe.to_dict().items()
           if key not in ("name", "description") and value is not None},
        "crop size": crop,
        "evaluation": f"{recipe.eval_mode} at {eval_size} px",
        "learning rate used": training_args.learning_rate,
        "per-device batch size": training_args.per_device_train_batch_size,
        "max steps": training_args.max_steps,
    }
    shown = ("eval_mean_iou", "eval_mean_accuracy", "eval_overall_accuracy", "eval_loss", "train_loss")
    write_model_card(
        training_args.output_dir,
        model_name=os.path.basename(os.path.normpath(training_args.hub_model_id or training_args.output_dir)),
        summary=f"A UperNet semantic segmentation model trained from {start} on {data_args.source_description} with "
        "`run_semantic_segmentation.py` of the A2MIM reference implementation. It is a stock transformers checkpoint: "
        "`pipeline('image-segmentation', model=...)` loads it without the A2MIM package.",
        dataset=data_args.source_description,
        training=training,
        metrics={key: value for key, value in metrics.items() if key in shown or key.startswith("eval_iou_")},
        datasets=[data_args.dataset_name] if data_args.dataset_name else None,
        tags=["image-segmentation", "upernet"],
        pipeline_tag="image-segmentation",
        auto_class="AutoModelForSemanticSegmentation",
        stock_checkpoint=True,
        repo_or_path=training_args.hub_model_id or training_args.output_dir,
    )


if __name__ == "__main__":
    run_main(main, "run_semantic_segmentation.py")
