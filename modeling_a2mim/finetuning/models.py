"""Building the stock transformers classifier to fine-tune from any of the encoders A2MIM produces or accepts.

Sources: an A2MIM checkpoint (its encoder converted in memory with `stock_encoder`, the decoder dropped), an
exported encoder or any stock `BeitModel` / `ViTModel` / `ResNetModel` / `ConvNextModel` checkpoint (or a classifier
of those), or a preset for training from scratch. The result is a stock `BeitForImageClassification` /
`ViTForImageClassification` / `ResNetForImageClassification` / `ConvNextForImageClassification`, which needs no A2MIM
code to load.
"""

import logging

from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from ..configuration_a2mim import SUPPORTED_BACKBONES, A2MIMConfig
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..modeling_a2mim import A2MIMModel, imagenet_image_processor
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


def _load_stock(path: str, labels, drop_path_rate, **hub_kwargs):
    config = AutoConfig.from_pretrained(path, **hub_kwargs)
    kwargs = {**_label_kwargs(labels), **drop_path_kwargs(config.model_type, drop_path_rate)}
    same_head = labels is not None and getattr(config, "id2label", None) and list(config.id2label.values()) == labels
    model = AutoModelForImageClassification.from_pretrained(
        path, ignore_mismatched_sizes=not same_head, **kwargs, **hub_kwargs
    )
    try:
        image_processor = AutoImageProcessor.from_pretrained(path, **hub_kwargs)
    except (OSError, ValueError):
        image_processor = None
    return model, image_processor


def load_classifier(
    model_name_or_path: str | None = None,
    model_preset: str | None = None,
    labels: list[str] | None = None,
    image_size: int | None = None,
    drop_path_rate: float | None = None,
    **hub_kwargs,
):
    """`(stock classifier, checkpoint image processor or None)` for fine-tuning or evaluation.

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
        return _from_preset(model_preset, labels, image_size, drop_path_rate)
    config = AutoConfig.from_pretrained(model_name_or_path, **hub_kwargs)
    if config.model_type == A2MIMConfig.model_type:
        return _from_a2mim(A2MIMModel.from_pretrained(model_name_or_path, **hub_kwargs), labels, drop_path_rate)
    if config.model_type not in SUPPORTED_BACKBONES:
        raise ValueError(
            f"{model_name_or_path} is a {config.model_type!r} model; fine-tuning supports A2MIM checkpoints and "
            f"stock {', '.join(SUPPORTED_BACKBONES)} encoders or classifiers."
        )
    return _load_stock(model_name_or_path, labels, drop_path_rate, **hub_kwargs)


def _from_a2mim(a2mim: A2MIMModel, labels, drop_path_rate):
    """The stock classifier on `a2mim`'s encoder, built in memory on every rank (no folder to share between ranks),
    and the ImageNet image processor at the A2MIM resolution."""
    encoder = a2mim.stock_encoder()
    config = encoder.config
    for key, value in {**_label_kwargs(labels), **drop_path_kwargs(config.model_type, drop_path_rate)}.items():
        setattr(config, key, value)
    classifier = AutoModelForImageClassification.from_config(config)
    classifier.base_model.load_state_dict(encoder.state_dict(), strict=True)
    return classifier, imagenet_image_processor(a2mim.config.image_size)


def _from_preset(name: str, labels, image_size, drop_path_rate):
    a2mim_config = A2MIMConfig.from_preset(name)
    backbone = a2mim_config.backbone_config
    if backbone.model_type == "beit":
        backbone.use_mean_pooling = True  # the fine-tuning form: fc_norm over mean-pooled patch tokens
    if backbone.model_type in ("beit", "vit"):
        backbone.image_size = image_size or a2mim_config.image_size
    for key, value in {**_label_kwargs(labels), **drop_path_kwargs(backbone.model_type, drop_path_rate)}.items():
        setattr(backbone, key, value)
    backbone.architectures = None
    image_processor = imagenet_image_processor(image_size or a2mim_config.image_size)
    return AutoModelForImageClassification.from_config(backbone), image_processor


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
