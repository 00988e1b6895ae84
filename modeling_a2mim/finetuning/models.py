"""Building the stock transformers classifier to fine-tune from any of the encoders A2MIM produces or accepts.

Sources: an A2MIM checkpoint (its encoder converted in memory with `stock_encoder`, the decoder dropped), an
exported encoder or any stock `BeitModel` / `ViTModel` / `ResNetModel` / `ConvNextModel` checkpoint (or a classifier
of those), or a preset for training from scratch. The result is a stock `BeitForImageClassification` /
`ViTForImageClassification` / `ResNetForImageClassification` / `ConvNextForImageClassification`, which needs no A2MIM
code to load.
"""

import logging

from transformers import AutoModelForImageClassification

from ..configuration_a2mim import SUPPORTED_BACKBONES, A2MIMConfig
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..modeling_a2mim import normalizing_image_processor
from ..training.model_sources import load_model_config, reading_checkpoint
from ..transfer import (
    IMAGENET_STATISTICS,
    TransferSource,
    load_transfer_source,
    preset_encoder_config,
    saved_image_processor,
    statistics_source_of,
)
from .transforms import image_processor_size

logger = logging.getLogger(__name__)

# Config fields holding stochastic depth: BEiT and ConvNeXt among the stock encoders have it.
_DROP_PATH_FIELD = {"beit": "drop_path_rate", "convnext": "drop_path_rate"}


def _label_kwargs(labels: list[str] | None) -> dict:
    if labels is None:
        return {}
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: index for index, label in enumerate(labels)},
    }


def drop_path_kwargs(model_type: str, drop_path_rate: float | None) -> dict:
    if drop_path_rate is None:
        return {}
    field = _DROP_PATH_FIELD.get(model_type)
    if field is None:
        if drop_path_rate > 0:
            logger.warning(
                "drop_path_rate=%s is not applied: transformers' %s encoder has no stochastic depth.",
                drop_path_rate, model_type,
            )
        return {}
    return {field: drop_path_rate}


def _load_stock(path: str, config, labels, drop_path_rate, **hub_kwargs):
    kwargs = {**_label_kwargs(labels), **drop_path_kwargs(config.model_type, drop_path_rate)}
    same_head = labels is not None and getattr(config, "id2label", None) and list(config.id2label.values()) == labels
    with reading_checkpoint(path):
        model = AutoModelForImageClassification.from_pretrained(
            path, ignore_mismatched_sizes=not same_head, **kwargs, **hub_kwargs
        )
    image_processor = saved_image_processor(path, **hub_kwargs)
    return model, image_processor, statistics_source_of(path, image_processor)


def load_classifier(
    model_name_or_path: str | None = None,
    model_preset: str | None = None,
    labels: list[str] | None = None,
    image_size: int | None = None,
    drop_path_rate: float | None = None,
    **hub_kwargs,
):
    """`(stock classifier, image processor or None, where its statistics come from)` for fine-tuning or evaluation.

    The image processor normalizes as the encoder's pretraining did: an A2MIM checkpoint's own statistics
    (`transfer.load_transfer_source`), a stock checkpoint's saved processor as it is (`None` without one: ImageNet
    statistics then), ImageNet statistics for a preset trained from scratch. The third item says which, for the log
    and the model card.

    Args:
        model_name_or_path: A2MIM checkpoint, exported/stock encoder, or stock classifier (Hub id or folder).
        model_preset: An `A2MIMConfig` preset name, to train its encoder from scratch (no checkpoint).
        labels: Class names in label-id order; `None` keeps a classifier checkpoint's own head.
        image_size: Input resolution of a from-scratch ViT-like model (defaults to the preset's).
        drop_path_rate: Stochastic depth of the encoder, where the architecture has it.
        hub_kwargs: `from_pretrained` options (revision, cache_dir, token) for checkpoints.
    """
    if (model_name_or_path is None) == (model_preset is None):
        raise ValueError("Give exactly one of --model_name_or_path (a checkpoint) and --model_preset (from scratch).")
    if model_preset is not None:
        model, image_processor, statistics = _from_preset(model_preset, labels, image_size, drop_path_rate)
        description = f"random weights (the {model_preset} preset, from scratch)"
    else:
        config = load_model_config(model_name_or_path, **hub_kwargs)
        if config.model_type == A2MIMConfig.model_type:
            model, image_processor, statistics = _from_a2mim(
                load_transfer_source(model_name_or_path, **hub_kwargs), labels, drop_path_rate
            )
        elif config.model_type in SUPPORTED_BACKBONES:
            model, image_processor, statistics = _load_stock(
                model_name_or_path, config, labels, drop_path_rate, **hub_kwargs
            )
        else:
            raise ValueError(
                f"{model_name_or_path} is a {config.model_type!r} model; fine-tuning supports A2MIM checkpoints and "
                f"stock {', '.join(SUPPORTED_BACKBONES)} encoders or classifiers."
            )
        description = model_name_or_path
    logger.info("Classifier %s from %s; image statistics: %s.", type(model).__name__, description, statistics)
    return model, image_processor, statistics


def _from_a2mim(source: TransferSource, labels, drop_path_rate):
    """The stock classifier on the encoder of an A2MIM checkpoint, built in memory on every rank (no folder to share
    between ranks), with the checkpoint's own image processor."""
    config = source.encoder.config
    for key, value in {**_label_kwargs(labels), **drop_path_kwargs(config.model_type, drop_path_rate)}.items():
        setattr(config, key, value)
    classifier = AutoModelForImageClassification.from_config(config)
    classifier.base_model.load_state_dict(source.encoder.state_dict(), strict=True)
    return classifier, source.image_processor, source.statistics_source


def _from_preset(name: str, labels, image_size, drop_path_rate):
    backbone, size = preset_encoder_config(name, image_size)
    for key, value in {**_label_kwargs(labels), **drop_path_kwargs(backbone.model_type, drop_path_rate)}.items():
        setattr(backbone, key, value)
    classifier = AutoModelForImageClassification.from_config(backbone)
    return classifier, normalizing_image_processor(size), IMAGENET_STATISTICS


def native_image_size(model, image_processor) -> int:
    """The resolution a checkpoint was trained at: its image processor's, else its config's, else 224."""
    size = image_processor_size(image_processor) if image_processor is not None else None
    if size is None:
        size = getattr(model.config, "image_size", None)
        size = size[0] if isinstance(size, (list, tuple)) else size
    return int(size or 224)


def normalization(image_processor) -> tuple[list[float], list[float]]:
    """`(mean, std)` of a checkpoint's image processor, ImageNet statistics without one."""
    if image_processor is None or getattr(image_processor, "image_mean", None) is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return list(image_processor.image_mean), list(image_processor.image_std)
