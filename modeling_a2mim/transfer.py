"""The starting point of every transfer script: a stock encoder and the image statistics it was pretrained with.

Sources: an A2MIM checkpoint (its encoder converted in memory with `stock_encoder`, the decoder dropped), an exported
encoder or any stock `BeitModel` / `ViTModel` / `ResNetModel` / `ConvNextModel` checkpoint (or a classifier of those),
or a preset for training from scratch.
"""

import logging
from dataclasses import dataclass

from transformers import AutoImageProcessor, AutoModel, PreTrainedModel, ViTImageProcessor

from .configuration_a2mim import SUPPORTED_BACKBONES, A2MIMConfig
from .finetuning.transforms import image_processor_size
from .modeling_a2mim import A2MIMModel, build_encoder, normalizing_image_processor
from .training.model_sources import load_model_config, reading_checkpoint

logger = logging.getLogger(__name__)

IMAGENET_STATISTICS = "ImageNet statistics"


def saved_image_processor(model_name_or_path: str, **hub_kwargs):
    """The image processor saved with a checkpoint (`preprocessor_config.json`), `None` when it has none."""
    try:
        return AutoImageProcessor.from_pretrained(model_name_or_path, **hub_kwargs)
    except OSError:
        return None
    except ValueError as error:  # e.g. a preprocessor_config.json that is not JSON
        raise ValueError(f"Cannot read the image processor of {model_name_or_path} "
                         f"(preprocessor_config.json): {error}. Fix or delete the file.") from error


def has_statistics(image_processor) -> bool:
    return getattr(image_processor, "image_mean", None) is not None and \
        getattr(image_processor, "image_std", None) is not None


def statistics_source_of(model_name_or_path: str, image_processor) -> str:
    """Where the statistics of a checkpoint's saved `image_processor` (or its absence) come from, in words."""
    if has_statistics(image_processor):
        return f"{model_name_or_path}/preprocessor_config.json"
    return f"{IMAGENET_STATISTICS} ({model_name_or_path} has no image processor)"


def checkpoint_image_processor(model_name_or_path: str, size: int | None = None,
                               **hub_kwargs) -> tuple[ViTImageProcessor, str]:
    """`(image processor at size x size, where its statistics came from)`: the mean/std of the checkpoint's own
    `preprocessor_config.json` (the statistics its pretraining normalized with), ImageNet statistics when it has none.
    `size` defaults to the saved processor's size, else 224.
    """
    saved = saved_image_processor(model_name_or_path, **hub_kwargs)
    size = size or (image_processor_size(saved) if saved is not None else None) or 224
    source = statistics_source_of(model_name_or_path, saved)
    if not has_statistics(saved):
        return normalizing_image_processor(size), source
    return normalizing_image_processor(size, saved.image_mean, saved.image_std), source


def a2mim_image_processor(config: A2MIMConfig, model_name_or_path: str | None = None, size: int | None = None,
                          **hub_kwargs) -> tuple[ViTImageProcessor, str]:
    """`(image processor at size x size, where its statistics came from)` of an A2MIM model: the statistics its
    config records (`image_mean` / `image_std`), else those of `model_name_or_path`'s `preprocessor_config.json` (a
    checkpoint saved before configs recorded them, or the stock encoder a pretraining starts from), else ImageNet's.
    `size` defaults to `config.image_size`."""
    size = size or config.image_size
    if config.image_mean is not None:
        where = f"the A2MIM config of {model_name_or_path}" if model_name_or_path else "the A2MIM config"
        return (normalizing_image_processor(size, config.image_mean, config.image_std),
                f"{where} (image_mean / image_std)")
    if model_name_or_path is None:
        return normalizing_image_processor(size), IMAGENET_STATISTICS
    return checkpoint_image_processor(model_name_or_path, size, **hub_kwargs)


def preset_encoder_config(model_preset: str, image_size: int | None = None):
    """`(stock encoder config, input size)` of a preset's encoder in its fine-tuning form (BEiT: mean pooling, as
    `stock_encoder` gives), a ViT-like one at `image_size` (default: the preset's)."""
    config = A2MIMConfig.from_preset(model_preset)
    backbone = config.backbone_config
    size = image_size or config.image_size
    if backbone.model_type == "beit":
        backbone.use_mean_pooling = True
    if backbone.model_type in ("beit", "vit"):
        backbone.image_size = size
    backbone.architectures = None
    return backbone, size


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
        backbone, size = preset_encoder_config(model_preset, image_size)
        return TransferSource(build_encoder(backbone), normalizing_image_processor(size), IMAGENET_STATISTICS,
                              f"preset {model_preset} (random init)")
    config = load_model_config(model_name_or_path, **hub_kwargs)
    if config.model_type == A2MIMConfig.model_type:
        with reading_checkpoint(model_name_or_path):
            encoder = A2MIMModel.from_pretrained(model_name_or_path, **hub_kwargs).stock_encoder()
        image_processor, statistics_source = a2mim_image_processor(config, model_name_or_path, image_size,
                                                                   **hub_kwargs)
        description = f"the encoder of the A2MIM checkpoint {model_name_or_path}"
    elif config.model_type in SUPPORTED_BACKBONES:
        with reading_checkpoint(model_name_or_path):
            encoder = AutoModel.from_pretrained(model_name_or_path, **hub_kwargs)
        native = getattr(encoder.config, "image_size", None)  # a ViT's position embeddings fix it; CNNs: None
        size = image_size or (native[0] if isinstance(native, (list, tuple)) else native)
        image_processor, statistics_source = checkpoint_image_processor(model_name_or_path, size, **hub_kwargs)
        description = f"the stock {type(encoder).__name__} of {model_name_or_path}"
    else:
        raise ValueError(
            f"{model_name_or_path} is a {config.model_type!r} model; transfer starts from A2MIM checkpoints and "
            f"stock {', '.join(SUPPORTED_BACKBONES)} encoders or classifiers."
        )
    logger.info("Encoder: %s; image statistics from %s.", description, statistics_source)
    return TransferSource(encoder, image_processor, statistics_source, description)
