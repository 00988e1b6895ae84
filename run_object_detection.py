#!/usr/bin/env python
"""Train (or evaluate) a DETR-family object detector on an A2MIM encoder.

The result is a stock `RTDetrForObjectDetection` (or `ConditionalDetrForObjectDetection` / `DetrForObjectDetection`)
with its image processor, which `AutoModelForObjectDetection` and `pipeline("object-detection")` load without this
package. The data format and flag names are those of transformers' `examples/pytorch/object-detection/
run_object_detection.py`; with no data source the embedded Fashion-MNIST scenes (one box per garment) are used.

    python run_object_detection.py --model_name_or_path ./a2mim-resnet --output_dir ./det \
        --do_train --do_eval --image_square_size 96 --num_queries 10 --d_model 64 ...
"""

import logging
import os
from dataclasses import dataclass, field

from transformers import TrainingArguments, set_seed

from modeling_a2mim.data import SkippedImageCounter, find_image_column, without_image_decoding
from modeling_a2mim.detection.data import (
    DetectionBatchTransform,
    DetectionDataArguments,
    category_names,
    check_annotations,
    collate_detection,
    load_detection_dataset,
    train_augmentation,
    with_image_ids,
)
from modeling_a2mim.detection.metrics import DetectionMetrics
from modeling_a2mim.detection.models import (
    DETECTORS,
    DetectorSize,
    apply_backbone_freezing,
    build_detector,
    is_saved_detector,
    load_saved_detector,
)
from modeling_a2mim.detection.pictures import DetectionPictureCallback, save_detection_picture
from modeling_a2mim.finetuning.arguments import ModelArguments
from modeling_a2mim.training.arguments import select_splits
from modeling_a2mim.training.checkpoints import resolve_resume_checkpoint
from modeling_a2mim.training.cli import parse_script_arguments, run_main, setup_logging
from modeling_a2mim.training.files import share_output_files
from modeling_a2mim.training.finished_run import claim_output_dir
from modeling_a2mim.training.hub import check_hub_access, push_output_dir
from modeling_a2mim.training.model_card import write_model_card
from modeling_a2mim.training.trainer import A2MIMTrainer
from modeling_a2mim.transfer import load_transfer_source

logger = logging.getLogger(__name__)
PICTURE_IMAGES = 4


@dataclass
class DetectorArguments:
    """The stock detection head and the transfer protocol."""

    detector: str = field(
        default="rt_detr",
        metadata={"help": f"The stock DETR-family head: {', '.join(DETECTORS)}. RT-DETR (multi-scale, denoising "
                          "queries) learns the embedded scenes in hundreds of steps; Conditional DETR and DETR read "
                          "one map and converge far slower."},
    )
    num_queries: int | None = field(default=None, metadata={"help": "Object queries (at most that many detections); "
                                                                     "default the detector's (DETR 100, RT-DETR 300)."})
    d_model: int | None = field(default=None, metadata={"help": "Width of the detector's transformer (default 256)."})
    encoder_layers: int | None = field(
        default=None, metadata={"help": "Transformer encoder layers (default DETR 6, RT-DETR 1)."})
    decoder_layers: int | None = field(default=None, metadata={"help": "Transformer decoder layers (default 6)."})
    attention_heads: int | None = field(
        default=None, metadata={"help": "Attention heads of encoder and decoder (default 8)."})
    ffn_dim: int | None = field(
        default=None, metadata={"help": "Feed-forward width of encoder and decoder (default DETR 2048, RT-DETR 1024)."})
    num_denoising: int | None = field(
        default=None, metadata={"help": "RT-DETR's denoising queries (noised ground-truth boxes; default 100)."})
    auxiliary_loss: bool = field(
        default=True,
        metadata={"help": "Decoding losses at every decoder layer, as the DETR papers train (transformers' default "
                          "is off); --no_auxiliary_loss turns them off."},
    )
    freeze_backbone_stages: int = field(
        default=-1,
        metadata={"help": "Backbone stages that do not train (mmdet's frozen_stages): -1 none (the MoCo / SparK / "
                          "A2MIM detection protocol), 0 the stem, N the stem and stages (ViT: blocks) 1..N."},
    )
    backbone_lr_multiplier: float = field(
        default=0.1, metadata={"help": "Backbone learning rate / --learning_rate (DETR's recipe: 1e-5 vs 1e-4)."}
    )

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise ValueError(f"Unknown --detector {self.detector!r}; use one of {', '.join(DETECTORS)}.")
        if self.freeze_backbone_stages < -1:
            raise ValueError(f"--freeze_backbone_stages {self.freeze_backbone_stages}: use -1 (none) or a stage >= 0.")

    def size(self) -> DetectorSize:
        return DetectorSize(self.num_queries, self.d_model, self.encoder_layers, self.decoder_layers,
                            self.attention_heads, self.ffn_dim, self.auxiliary_loss, self.num_denoising)


class DetectionTrainer(A2MIMTrainer):
    """`A2MIMTrainer` for the DETR family. Its loss is a per-batch mean, so Trainer must divide it by the accumulation
    steps (it would not: the detectors take `**kwargs` and the batches hold `labels`). The batches' `targets` (the
    boxes as one padded tensor, the metric's `label_names`) are not a model input."""

    loss_is_scaled_for_ga = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = {key: value for key, value in inputs.items() if key != "targets"}
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)


def load_splits(data_args, training_args, hub_kwargs):
    """`(train or None, eval or None, image column)` with undecoded images and an `image_id` column."""
    dataset = load_detection_dataset(data_args, training_args.seed, **hub_kwargs)
    first = dataset.get("train") if dataset.get("train") is not None else next(iter(dataset.values()), None)
    if first is None:
        raise ValueError(f"The data source has no splits ({data_args.source_description}).")
    image_column = find_image_column(first, data_args.image_column_name)
    dataset = {name: without_image_decoding(split, image_column) for name, split in dataset.items()}
    train, eval_dataset = select_splits(dataset, data_args, training_args.seed, need_train=training_args.do_train)
    if training_args.do_eval and eval_dataset is None:
        raise ValueError("--do_eval needs an evaluation split: the data has no validation/test split; add "
                         "--validation_dir (or --validation_files), or hold out a fraction with "
                         "--train_val_split 0.1.")
    return (with_image_ids(train) if train is not None else None,
            with_image_ids(eval_dataset) if eval_dataset is not None else None, image_column)


def load_model(model_args, detector_args, data_args, labels):
    """`(detector, image processor, description of the start, backbone keys left new)`."""
    hub_kwargs = {"cache_dir": model_args.cache_dir, "token": model_args.token, "revision": model_args.model_revision}
    if model_args.model_name_or_path and is_saved_detector(model_args.model_name_or_path, **hub_kwargs):
        model, processor = load_saved_detector(model_args.model_name_or_path, **hub_kwargs)
        return model, processor, f"the saved detector {model_args.model_name_or_path}", []
    if labels is None:
        raise ValueError("Evaluation starts from a saved detector: --model_name_or_path must hold one (or add "
                         "--do_train).")
    source = load_transfer_source(model_args.model_name_or_path, model_args.model_preset,
                                  **({"cache_dir": model_args.cache_dir, "token": model_args.token}
                                     if model_args.model_name_or_path else {}))
    model, processor, new = build_detector(source, detector_args.detector, labels, detector_args.size(),
                                           data_args.image_square_size)
    return model, processor, source.description, new


def main(callbacks=()):
    model_args, detector_args, data_args, training_args, given = parse_script_arguments(
        (ModelArguments, DetectorArguments, DetectionDataArguments, TrainingArguments)
    )
    setup_logging(training_args, logger)
    training_args.remove_unused_columns = False  # the batch transform needs the raw image and objects columns
    training_args.eval_do_concat_batches = False  # one box list per image: batches are not concatenated
    training_args.label_names = ["targets"]  # the boxes as one padded tensor, which Trainer can gather (see collate)
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False  # pushed once at the end, see below
    if push_to_hub:
        check_hub_access(training_args.hub_model_id, training_args.hub_token, training_args.hub_private_repo)
    output_lock, finished = claim_output_dir(training_args, training_args.do_train)
    if finished is not None:
        return
    set_seed(training_args.seed)

    train_dataset, eval_dataset, image_column = load_splits(
        data_args, training_args, {"cache_dir": model_args.cache_dir, "token": model_args.token})
    labels = category_names(train_dataset) if training_args.do_train else None
    model, image_processor, start, new_keys = load_model(model_args, detector_args, data_args, labels)
    protocol = apply_backbone_freezing(model, detector_args.freeze_backbone_stages)
    logger.warning("Detector: %s from %s; backbone keys left new: %s; %s.", type(model).__name__, start,
                   new_keys or "none", protocol)  # a warning so that the default log level shows it
    for split, dataset in (("train", train_dataset), ("eval", eval_dataset)):
        if dataset is not None:
            check_annotations(dataset, model.config.num_labels, split)

    counter = SkippedImageCounter()
    if training_args.do_train:
        train_dataset.set_transform(DetectionBatchTransform(image_column, image_processor, counter,
                                                            train_augmentation()))
    if eval_dataset is not None:
        eval_dataset.set_transform(DetectionBatchTransform(image_column, image_processor, counter))

    picture_batch = None
    if eval_dataset is not None and training_args.do_train:
        picture_batch = collate_detection([eval_dataset[i] for i in range(min(PICTURE_IMAGES, len(eval_dataset)))])
        callbacks = [*callbacks, DetectionPictureCallback(image_processor, picture_batch)]
    multiplier = detector_args.backbone_lr_multiplier
    trainer = DetectionTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        data_collator=collate_detection,
        compute_metrics=DetectionMetrics(image_processor, model.config.id2label),
        processing_class=image_processor,
        lr_multiplier=lambda name: multiplier if ".backbone." in name else 1.0,
        callbacks=list(callbacks),
        skipped_images=counter,
    )

    all_metrics = {}
    if training_args.do_train:
        checkpoint = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
        all_metrics.update(trainer.train_and_save(checkpoint))
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["skipped_images"] = counter.value
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        all_metrics.update({k: v for k, v in metrics.items() if k.startswith("eval_")})

    if training_args.do_train and trainer.is_world_process_zero():
        if picture_batch is not None:
            save_detection_picture(model, image_processor, picture_batch, training_args.output_dir)
        write_detection_card(training_args, data_args, detector_args, start, protocol, all_metrics, model)
        share_output_files(training_args.output_dir)
        if push_to_hub:
            pushed = push_output_dir(training_args.output_dir, training_args.hub_model_id,
                                     token=training_args.hub_token, private=training_args.hub_private_repo,
                                     commit_message=f"Object detection ({detector_args.detector})")
            logger.info("Pushed %s to %s", ", ".join(pushed), training_args.hub_model_id)
    if output_lock is not None:
        output_lock.release()


def write_detection_card(training_args, data_args, detector_args, start: str, protocol: str, metrics: dict,
                         model) -> None:
    """`README.md` next to the detector: data, start, detector size (the built `model`'s, defaults included), the
    backbone protocol and the COCO metrics."""
    training = {
        "architecture": type(model).__name__,
        "initialization": start,
        "backbone protocol": protocol,
        **({} if detector_args.detector == "rt_detr" else {
            "reloading": "AutoModelForObjectDetection.from_pretrained gives every backbone parameter "
                         "requires_grad=True (transformers 5.24); a detector built from its config freezes a ResNet "
                         "backbone whole: call model.model.backbone.model.requires_grad_(True) before training it"}),
        **{key: value for key, value in vars(DetectorSize.of(model.config)).items() if value is not None},
        "freeze_backbone_stages": detector_args.freeze_backbone_stages,
        "backbone_lr_multiplier": detector_args.backbone_lr_multiplier,
        "image square size": data_args.image_square_size,
        "learning rate": training_args.learning_rate,
        "per-device batch size": training_args.per_device_train_batch_size,
        "training length": (f"{training_args.max_steps} steps" if training_args.max_steps > 0
                            else f"{training_args.num_train_epochs:g} epochs"),
    }
    write_model_card(
        training_args.output_dir,
        model_name=os.path.basename(os.path.normpath(training_args.hub_model_id or training_args.output_dir)),
        summary=f"An object detector ({DETECTORS[detector_args.detector].description}) trained from {start} on "
        f"{data_args.source_description} with `run_object_detection.py` of the A2MIM reference implementation. It "
        "is a stock transformers checkpoint: `pipeline('object-detection', model=...)` loads it without the A2MIM "
        "package. `detections.png` shows predicted (red) vs ground-truth (green) boxes on held images.",
        dataset=data_args.source_description,
        training=training,
        metrics={key: value for key, value in metrics.items()
                 if key.startswith(("eval_map", "eval_mar", "eval_loss")) or key == "train_loss"},
        datasets=[data_args.dataset_name] if data_args.dataset_name else None,
        tags=["object-detection"],
        pipeline_tag="object-detection",
        auto_class="AutoModelForObjectDetection",
        stock_checkpoint=True,
        repo_or_path=training_args.hub_model_id or training_args.output_dir,
    )


if __name__ == "__main__":
    run_main(main, "run_object_detection.py")
