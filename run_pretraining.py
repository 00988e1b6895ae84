#!/usr/bin/env python
"""A2MIM pretraining of a ViT, a ResNet or a ConvNeXt with masked image modeling (Li et al., ICML 2023) on any image
dataset.

    python run_pretraining.py --output_dir outputs/demo --model_preset vit-micro --max_steps 300 --use_cpu

With no data argument it trains on the embedded Fashion-MNIST subset. Arguments come from the command line or from
one `.json` / `.yaml` file (`python run_pretraining.py args.yaml`). The preset's recipe (see
`modeling_a2mim/training/recipes.py`) fills the optimizer/schedule flags you do not pass yourself.
"""

import logging
import os
import sys
from dataclasses import dataclass, field

import torch
import transformers
from transformers import TrainingArguments, set_seed
from transformers.integrations import is_tensorboard_available

import modeling_a2mim  # noqa: F401  (registers A2MIM with the Auto classes)
from modeling_a2mim.data import SkippedImageCounter, first_readable_images
from modeling_a2mim.data.collator import MaskingCollator
from modeling_a2mim.data.sample_positions import with_sample_positions
from modeling_a2mim.presets import PRESETS
from modeling_a2mim.training.arguments import DataArguments, prepare_splits
from modeling_a2mim.training.checkpoints import resolve_resume_checkpoint
from modeling_a2mim.training.cli import parse_script_arguments, run_main
from modeling_a2mim.training.files import reporting_a_full_disk, share_output_files
from modeling_a2mim.training.finished_run import claim_output_dir
from modeling_a2mim.training.hub import check_hub_access, push_output_dir
from modeling_a2mim.training.model_card import write_model_card
from modeling_a2mim.training.model_init import build_pretraining_model
from modeling_a2mim.training.optimization import mask_token_lr_multiplier
from modeling_a2mim.training.trainer import A2MIMTrainer
from modeling_a2mim.training.reconstructions import ReconstructionCallback, save_reconstructions
from modeling_a2mim.training.recipes import apply_recipe, global_batch_size, recipe_for
from modeling_a2mim.transfer import a2mim_image_processor

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Which model to pretrain."""

    model_preset: str | None = field(
        default=None,
        metadata={"help": f"A named preset ({', '.join(PRESETS)}), trained from scratch. Default: vit-micro. With "
                          "--model_name_or_path of a stock encoder it names the preset whose A2MIM settings to use."},
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A saved A2MIM checkpoint to continue from, or a stock BeitModel/ViTModel/ResNetModel "
                          "checkpoint (Hub id or folder) whose weights initialize the encoder."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Config fields to override, e.g. 'mask_ratio=0.5,image_size=64,"
                          "backbone_config.drop_path_rate=0.1'."},
    )
    use_recipe_defaults: bool = field(
        default=True,
        metadata={"help": "Fill learning rate (scaled by global batch / 512), weight decay, betas, warmup, schedule "
                          "and grad clipping from the preset's recipe unless passed explicitly."},
    )
    mask_token_lr_multiplier: float | None = field(
        default=None, metadata={"help": "Learning rate multiplier of the mask token (recipe: 0.1 ResNet, 1 ViT)."}
    )
    num_reconstruction_images: int = field(
        default=6, metadata={"help": "Held images shown in reconstructions.png at each save."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache Hub models and datasets."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models/datasets."})


def parse_arguments(argv: list[str]):
    """`(model_args, data_args, training_args, explicit)`; `explicit` holds the TrainingArguments fields the user set."""
    *parsed, explicit = parse_script_arguments((ModelArguments, DataArguments, TrainingArguments), argv)
    training_args = parsed[2]
    if "dataloader_num_workers" not in explicit and torch.cuda.is_available() and not training_args.use_cpu:
        # One process decodes a few hundred images/s: enough for a CPU step, too few to feed a GPU.
        training_args.dataloader_num_workers = min(8, os.cpu_count() or 1)
    return (*parsed, explicit)


def check_arguments(data_args: DataArguments, training_args: TrainingArguments) -> None:
    """Refuse combinations that would fail late or silently do something else."""
    if data_args.streaming and training_args.max_steps <= 0:
        raise ValueError("--streaming needs --max_steps: a streamed dataset has no length to count epochs by.")
    if training_args.fp16 and (training_args.use_cpu or not torch.cuda.is_available()):
        raise ValueError("--fp16 needs a CUDA GPU (on CPU it would be silently ignored); use --bf16 on CPU.")
    if training_args.push_to_hub:
        check_hub_access(training_args.hub_model_id, training_args.hub_token, training_args.hub_private_repo)


def main(argv: list[str] | None = None, callbacks=()) -> dict:
    model_args, data_args, training_args, explicit = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    check_arguments(data_args, training_args)
    output_lock, finished = claim_output_dir(training_args)
    if finished is not None:
        return finished
    set_seed(training_args.seed)

    # Model and recipe
    model, model_description = build_pretraining_model(
        model_args.model_preset, model_args.model_name_or_path, model_args.config_overrides,
        cache_dir=model_args.cache_dir, token=model_args.token,
    )
    config = model.config
    recipe_name, recipe = recipe_for(config, model_args.model_preset)
    applied = apply_recipe(training_args, recipe, explicit) if model_args.use_recipe_defaults else {}
    step_decay_at = None
    if model_args.use_recipe_defaults and "lr_scheduler_type" not in explicit:
        step_decay_at = recipe.step_decay_at
    lr_multiplier = model_args.mask_token_lr_multiplier
    if lr_multiplier is None:
        lr_multiplier = recipe.mask_token_lr_multiplier if model_args.use_recipe_defaults else 1.0
    logger.info("Model: %s; recipe %s filled %s (explicit flags win: %s)", model_description, recipe_name, applied,
                sorted(explicit & {"learning_rate", *recipe.training_arguments()}) or "none")

    # Data
    train_dataset, eval_dataset, image_column = prepare_splits(
        data_args, training_args.seed, cache_dir=model_args.cache_dir, token=model_args.token
    )
    # The statistics the pixels (input and target) are normalized with, recorded in the config so that the checkpoint,
    # its `save_encoder` export and every script starting from it normalize alike.
    image_processor, statistics_source = a2mim_image_processor(
        config, model_args.model_name_or_path, cache_dir=model_args.cache_dir, token=model_args.token
    )
    config.image_mean, config.image_std = list(image_processor.image_mean), list(image_processor.image_std)
    logger.info("Image statistics from %s: mean %s, std %s", statistics_source, config.image_mean, config.image_std)
    counter = SkippedImageCounter()
    collator_options = {"image_column": image_column, "counter": counter, "seed": training_args.seed}
    collator = MaskingCollator.from_config(config, image_processor, train=True, **collator_options)
    # Evaluation: center crops and the same masks at every evaluation, so that eval losses are comparable.
    eval_collator = MaskingCollator.from_config(config, image_processor, train=False, **collator_options)

    # Trainer settings the script needs: keep the image column, eval loss on bool_masked_pos, no logits kept.
    training_args.remove_unused_columns = False
    training_args.label_names = ["bool_masked_pos"]
    training_args.prediction_loss_only = True
    if "report_to" not in explicit and is_tensorboard_available():
        training_args.report_to = ["tensorboard"]
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False  # pushed once at the end, see below

    trainer = A2MIMTrainer(
        model=model,
        args=training_args,
        train_dataset=with_sample_positions(train_dataset),  # masks and crops depend on the seed and the position
        eval_dataset=eval_dataset if training_args.eval_strategy != "no" else None,
        data_collator=collator,
        eval_data_collator=eval_collator,
        processing_class=image_processor,
        callbacks=list(callbacks),
        skipped_images=counter,
        lr_multiplier=mask_token_lr_multiplier(lr_multiplier) if lr_multiplier != 1.0 else None,
        no_decay_name_parts=recipe.no_weight_decay,
        step_decay_at=step_decay_at,
    )
    # The reconstruction picture shows center crops (the eval collator's transform) with masks of a fixed seed.
    held = first_readable_images(eval_dataset if eval_dataset is not None else train_dataset, image_column,
                                 eval_collator.transform, model_args.num_reconstruction_images)
    held_masks = eval_collator.mask_generator(len(held), generator=torch.Generator().manual_seed(0))
    reconstructions = ReconstructionCallback(held, held_masks, image_processor.image_mean, image_processor.image_std)
    trainer.add_callback(reconstructions)

    checkpoint = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    with reporting_a_full_disk(training_args.output_dir, model):
        train_result = trainer.train(resume_from_checkpoint=checkpoint)

        # Outputs: weights + config (auto_map) + image processor, metrics, picture, model card.
        trainer.save_model()
        metrics = dict(train_result.metrics)
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        metrics["final_loss"] = losses[-1] if losses else train_result.training_loss
        if trainer.eval_dataset is not None:
            metrics.update(trainer.evaluate())
        metrics["skipped_images"] = counter.value
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("all", metrics)
        trainer.save_state()
    if trainer.is_world_process_zero():
        save_reconstructions(model, held, held_masks, image_processor.image_mean, image_processor.image_std,
                             training_args.output_dir)
        write_model_card(
            training_args.output_dir,
            model_name=training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir)),
            summary=f"A2MIM masked image modeling pretraining of {model_description}. `reconstructions.png` shows "
                    "original / masked input / reconstruction for held images.",
            dataset=data_args.source_description,
            training={
                "model": model_description,
                "backbone": config.backbone_config.model_type,
                "image size": config.image_size,
                "steps": trainer.state.global_step,
                "global batch": global_batch_size(training_args),
                "learning rate": training_args.learning_rate,
                "recipe": recipe_name if model_args.use_recipe_defaults else "none",
                "mask ratio": config.mask_ratio,
                "image statistics": f"{statistics_source}: mean {config.image_mean}, std {config.image_std}",
            },
            metrics={k: v for k, v in metrics.items() if k in ("final_loss", "eval_loss", "skipped_images",
                                                             "train_loss")},
            datasets=[data_args.dataset_name] if data_args.dataset_name and not os.path.exists(
                data_args.dataset_name) else None,
            repo_or_path=training_args.hub_model_id or training_args.output_dir,
        )
        share_output_files(training_args.output_dir)
        if push_to_hub:
            pushed = push_output_dir(training_args.output_dir, training_args.hub_model_id,
                                     token=training_args.hub_token, private=training_args.hub_private_repo)
            logger.info("Pushed %s to %s", ", ".join(pushed), training_args.hub_model_id)
        output_lock.release()
    return metrics


if __name__ == "__main__":
    run_main(main, "run_pretraining.py")
