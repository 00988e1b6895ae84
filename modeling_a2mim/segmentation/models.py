"""The stock `UperNetForSemanticSegmentation` on a pretrained encoder, or a saved one to continue / evaluate.

`UperNetForSemanticSegmentation(config)` builds its backbone with `load_backbone(config)`, i.e. with random weights
whatever `backbone_config` says (transformers 5 has no `use_pretrained_backbone`), and `AutoBackbone.from_pretrained`
asks the Hub even for a local folder. So the model is built from the backbone *config* (`backbone_config_for`) and the
encoder's weights are copied into `model.backbone` afterwards, strictly (`load_encoder_into_backbone`): only the keys
the backbone adds (BEiT's `fpn.*`, ConvNeXt's `hidden_states_norms.*`) may be new, and they are logged.
"""

import logging

from transformers import AutoImageProcessor, UperNetConfig, UperNetForSemanticSegmentation

from ..backbones import backbone_config_for, load_encoder_into_backbone
from ..finetuning.models import drop_path_kwargs
from ..training.model_sources import load_model_config
from .data import IGNORE_INDEX

logger = logging.getLogger(__name__)


def is_upernet_checkpoint(model_name_or_path: str | None, **hub_kwargs) -> bool:
    """Whether `model_name_or_path` is a saved `UperNetForSemanticSegmentation` (continue / evaluate)."""
    if model_name_or_path is None:
        return False
    return load_model_config(model_name_or_path, **hub_kwargs).model_type == UperNetConfig.model_type


def upernet_config(backbone_config, id2label: dict[int, str], recipe) -> UperNetConfig:
    """The UperNet config of a recipe: UperHead `head_channels`, the auxiliary FCN head on the third feature map."""
    return UperNetConfig(
        backbone_config=backbone_config,
        hidden_size=recipe.head_channels,
        use_auxiliary_head=recipe.auxiliary_head,
        auxiliary_loss_weight=recipe.auxiliary_loss_weight,
        auxiliary_channels=recipe.auxiliary_channels,
        auxiliary_in_channels=None,  # the third feature map's own width
        loss_ignore_index=IGNORE_INDEX,
        num_labels=len(id2label),
        id2label={int(k): v for k, v in id2label.items()},
        label2id={v: int(k) for k, v in id2label.items()},
    )


def build_upernet(encoder, id2label: dict[int, str], recipe) -> tuple[UperNetForSemanticSegmentation, list[str]]:
    """`(UperNet with the encoder's weights in its backbone, the backbone keys that are new)`."""
    backbone_config = backbone_config_for(encoder.config,
                                          **drop_path_kwargs(encoder.config.model_type, recipe.drop_path_rate))
    model = UperNetForSemanticSegmentation(upernet_config(backbone_config, id2label, recipe))
    new_keys = load_encoder_into_backbone(model.backbone, encoder)
    logger.info("UperNet backbone %s: every encoder tensor loaded; new (randomly initialized) backbone keys: %s.",
                type(model.backbone).__name__, new_keys or "none")
    return model, new_keys


def load_upernet(model_name_or_path: str, **hub_kwargs):
    """`(saved UperNet, its image processor)`; a `ValueError` when the folder has no image processor."""
    model = UperNetForSemanticSegmentation.from_pretrained(model_name_or_path, **hub_kwargs)
    try:
        image_processor = AutoImageProcessor.from_pretrained(model_name_or_path, **hub_kwargs)
    except (OSError, ValueError) as error:
        raise ValueError(f"{model_name_or_path} has no preprocessor_config.json (the image statistics it was trained "
                         f"with); save its image processor next to it: {error}") from error
    return model, image_processor
