"""Pretrain transformers' SimMIM (`ViTForMaskedImageModeling`) with exactly the data path and Trainer of
`run_pretraining.py`, so that the benchmark compares the methods and nothing else.

`run_pretraining.py` builds A2MIM models only; this adapter reuses its pieces (`DataArguments`/`prepare_splits`,
`PretrainingTransform`, `MaskingCollator`, `A2MIMTrainer` with the recipe's parameter groups) and changes two things:
the model is a stock `ViTForMaskedImageModeling` whose encoder starts from `--model_name_or_path` (a stock `ViTModel`
checkpoint, e.g. an untrained one saved with `save_pretrained`; its config needs `encoder_stride`), with a new
decoder and mask token; and the block mask `(B, g, g)` is upsampled to the model's patch grid `(B, num_patches)`,
the form its `bool_masked_pos` takes.

    python benchmarks/simmim_pretraining.py --model_name_or_path vit-encoder --data_files x.parquet \
        --output_dir out --max_steps 100 --per_device_train_batch_size 128 --use_cpu

The output folder holds the `ViTForMaskedImageModeling` checkpoint and a `ViTImageProcessor`;
`AutoModelForImageClassification.from_pretrained(output_dir, num_labels=N)` loads its encoder.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, HfArgumentParser, TrainingArguments, ViTForMaskedImageModeling

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modeling_a2mim.data import SkippedImageCounter  # noqa: E402
from modeling_a2mim.data.collator import MaskingCollator  # noqa: E402
from modeling_a2mim.data.transforms import CROP_SCALE, IMAGENET_MEAN, IMAGENET_STD, PretrainingTransform  # noqa: E402
from modeling_a2mim.masking import BlockMaskGenerator, upsample_mask  # noqa: E402
from modeling_a2mim.modeling_a2mim import normalizing_image_processor  # noqa: E402
from modeling_a2mim.training.arguments import DataArguments, prepare_splits  # noqa: E402
from modeling_a2mim.training.trainer import A2MIMTrainer  # noqa: E402


@dataclass
class SimMIMArguments:
    model_name_or_path: str = field(metadata={"help": "A stock ViTModel checkpoint (folder) to start the encoder at."})
    mask_patch_size: int = field(default=32, metadata={"help": "Side in pixels of one mask block."})
    mask_ratio: float = field(default=0.6, metadata={"help": "Fraction of blocks masked (ceil-based, as A2MIM)."})


class PatchMaskCollator:
    """Wraps a `MaskingCollator`: its `(B, g, g)` block mask becomes `(B, (image_size // patch_size) ** 2)` bool."""

    def __init__(self, collator: MaskingCollator, image_size: int, patch_size: int):
        self.collator = collator
        self.patch_grid = image_size // patch_size

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collator(examples)
        block_mask = batch["bool_masked_pos"]
        patch_mask = upsample_mask(block_mask, block_mask.shape[-1], self.patch_grid, torch.float32)
        batch["bool_masked_pos"] = patch_mask.flatten(1).bool()
        return batch


def main(argv=None):
    parser = HfArgumentParser((SimMIMArguments, DataArguments, TrainingArguments))
    simmim_args, data_args, training_args = parser.parse_args_into_dataclasses(argv)
    config = AutoConfig.from_pretrained(simmim_args.model_name_or_path)
    if config.model_type != "vit":
        raise ValueError(
            f"--model_name_or_path {simmim_args.model_name_or_path} is a {config.model_type!r} model; "
            "ViTForMaskedImageModeling needs a stock ViT checkpoint."
        )
    if config.image_size % simmim_args.mask_patch_size or simmim_args.mask_patch_size % config.patch_size:
        raise ValueError(
            f"--mask_patch_size {simmim_args.mask_patch_size} must divide image_size {config.image_size} and be a "
            f"multiple of patch_size {config.patch_size}."
        )
    train_dataset, _, image_column = prepare_splits(data_args, training_args.seed)
    counter = SkippedImageCounter()
    collator = MaskingCollator(
        BlockMaskGenerator(config.image_size, simmim_args.mask_patch_size, simmim_args.mask_ratio),
        PretrainingTransform(config.image_size, CROP_SCALE["vit"], IMAGENET_MEAN, IMAGENET_STD),
        image_column=image_column,
        counter=counter,
        seed=training_args.seed,
    )
    training_args.remove_unused_columns = False
    model = ViTForMaskedImageModeling.from_pretrained(simmim_args.model_name_or_path)
    trainer = A2MIMTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=PatchMaskCollator(collator, config.image_size, config.patch_size),
    )
    result = trainer.train()
    trainer.save_model()
    # The statistics the transform normalized with (ImageNet's).
    normalizing_image_processor(config.image_size).save_pretrained(training_args.output_dir)
    trainer.save_metrics("train", {**result.metrics, "skipped_images": counter.value})


if __name__ == "__main__":
    main()
