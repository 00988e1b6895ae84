"""The starting point of every transfer script: a stock encoder and the image statistics it was pretrained with.

Sources: an A2MIM checkpoint (its encoder converted in memory with `stock_encoder`, the decoder dropped), an exported
encoder or any stock `BeitModel` / `ViTModel` / `ResNetModel` / `ConvNextModel` checkpoint (or a classifier of those),
or a preset for training from scratch.
"""

import logging
from dataclasses import dataclass

from transformers import AutoConfig, AutoImageProcessor, AutoModel, PreTrainedModel, ViTImageProcessor

from .configuration_a2mim import SUPPORTED_BACKBONES, A2MIMConfig
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .finetuning.transforms import image_processor_size
from .modeling_a2mim import A2MIMModel, build_encoder

logger = logging.getLogger(__name__)

IMAGENET_STATISTICS = "ImageNet statistics"


def normalizing_image_processor(size: int, image_mean=None, image_std=None) -> ViTImageProcessor:
    """`ViTImageProcessor` resizing to `size` x `size` and normalizing with `image_mean` / `image_std` (ImageNet's when
    not given)."""
    return ViTImageProcessor(
        size={"height": size, "width": size},
        image_mean=list(IMAGENET_MEAN if image_mean is None else image_mean),
        image_std=list(IMAGENET_STD if image_std is None else image_std),
    )


def checkpoint_image_processor(model_name_or_path: str, size: int | None = None,
                               **hub_kwargs) -> tuple[ViTImageProcessor, str]:
    """`(image processor at size x size, where its statistics came from)`: the mean/std of the checkpoint's own
    `preprocessor_config.json` (the statistics its pretraining normalized with), ImageNet statistics when it has none.
    `size` defaults to the saved processor's size, else 224.
    """
    try:
        saved = AutoImageProcessor.from_pretrained(model_name_or_path, **hub_kwargs)
    except (OSError, ValueError):
        saved = None
    size = size or (image_processor_size(saved) if saved is not None else None) or 224
    mean, std = getattr(saved, "image_mean", None), getattr(saved, "image_std", None)
    if mean is None or std is None:
        return normalizing_image_processor(size), f"{IMAGENET_STATISTICS} ({model_name_or_path} has no image processor)"
    return normalizing_image_processor(size, mean, std), f"{model_name_or_path}/preprocessor_config.json"


@dataclass
class TransferSource:
    """What a transfer script starts from.

    encoder: the stock encoder (`BeitModel` in its fine-tuning form, `ViTModel`, `ResNetModel`, `ConvNextModel`), with
        the pretrained weights (random ones for a preset).
    image_processor: normalizes with the statistics the encoder was pretrained with, at its native resolution.
    statistics_source: where those statistics came from (for the log and the model card).
    description: what the encoder is (for the log and the model card).
    """

    encoder: PreTrainedModel
    image_processor: ViTImageProcessor
    statistics_source: str
    description: str


def load_transfer_source(model_name_or_path: str | None = None, model_preset: str | None = None,
                         image_size: int | None = None, **hub_kwargs) -> TransferSource:
    """The stock encoder of an A2MIM checkpoint, of a stock encoder / classifier checkpoint, or of a preset (random
    init), and the image processor its pretraining used. `image_size` sets a preset's ViT resolution and the
    processor's size (default: the checkpoint's own)."""
    if (model_name_or_path is None) == (model_preset is None):
        raise ValueError("Give exactly one of --model_name_or_path (a checkpoint) and --model_preset (from scratch).")
    if model_preset is not None:
        config = A2MIMConfig.from_preset(model_preset)
        backbone = config.backbone_config
        if backbone.model_type == "beit":
            backbone.use_mean_pooling = True  # the fine-tuning form, as `stock_encoder` gives
        if backbone.model_type in ("beit", "vit"):
            backbone.image_size = image_size or config.image_size
        backbone.architectures = None
        size = image_size or config.image_size
        return TransferSource(build_encoder(backbone), normalizing_image_processor(size), IMAGENET_STATISTICS,
                              f"preset {model_preset} (random init)")
    config = AutoConfig.from_pretrained(model_name_or_path, **hub_kwargs)
    if config.model_type == A2MIMConfig.model_type:
        encoder = A2MIMModel.from_pretrained(model_name_or_path, **hub_kwargs).stock_encoder()
        size = image_size or config.image_size
        description = f"the encoder of the A2MIM checkpoint {model_name_or_path}"
    elif config.model_type in SUPPORTED_BACKBONES:
        encoder = AutoModel.from_pretrained(model_name_or_path, **hub_kwargs)
        native = getattr(encoder.config, "image_size", None)  # a ViT's position embeddings fix it; CNNs: None
        size = image_size or (native[0] if isinstance(native, (list, tuple)) else native)
        description = f"the stock {type(encoder).__name__} of {model_name_or_path}"
    else:
        raise ValueError(
            f"{model_name_or_path} is a {config.model_type!r} model; transfer starts from A2MIM checkpoints and "
            f"stock {', '.join(SUPPORTED_BACKBONES)} encoders or classifiers."
        )
    image_processor, statistics_source = checkpoint_image_processor(model_name_or_path, size, **hub_kwargs)
    logger.info("Encoder: %s; image statistics from %s.", description, statistics_source)
    return TransferSource(encoder, image_processor, statistics_source, description)
