"""A stock encoder as a stock transformers backbone, with its pretrained weights: what the dense-task heads (UperNet,
the DETR family) take.

`backbone_config_for(encoder_config)` gives the `*Backbone` config of the protocol the A2MIM paper transfers with:
a BEiT-style ViT as `BeitBackbone` with the Feature2Pyramid neck (`add_fpn=True`: x4, x2, x1, /2 maps) read from blocks
4, 6, 8 and 12 of 12 (mmseg `out_indices=[3, 5, 7, 11]`, 0-based), a ResNet or ConvNeXt as its backbone over stages
1-4. The heads build that backbone with `load_backbone(config)`, i.e. with **random weights** whatever the config
says, so `load_encoder_into_backbone(backbone, encoder)` then copies the encoder's weights into it, strictly.

What happens to the encoder's final norm (the backbones have none of their own):
- BEiT (`pooler.layernorm`, the fine-tuning form's `fc_norm`; in the pretraining form the final `layernorm`): dropped.
  `BeitBackbone` returns the blocks' outputs without a final norm, as the mmseg ViT (`final_norm=False`) of the
  BEiT / MAE / A2MIM ADE20K and COCO protocols does.
- ConvNeXt (`layernorm`): copied into `hidden_states_norms.stage4`, the norm the backbone applies per position to the
  stage-4 map. A2MIM pretrains it exactly so (its decoder reads `layernorm` applied per position to the last map), and
  mmdet's ConvNeXt likewise loads the classifier's final norm as the last stage's output norm; the norms of stages
  1-3 are new.
- ResNet: has none; nothing is new.
"""

import logging

from transformers import BeitConfig, ConvNextConfig, PreTrainedConfig, PreTrainedModel, ResNetConfig

from .presets import PRESETS

logger = logging.getLogger(__name__)

# The paper's ViT feature blocks, 1-based (stage i of `BeitBackbone` is the output of block i), for 12 blocks.
VIT_OUT_BLOCKS_OF_12 = (4, 6, 8, 12)
CNN_STAGES = ["stage1", "stage2", "stage3", "stage4"]
_BACKBONE_CONFIGS = {"beit": BeitConfig, "resnet": ResNetConfig, "convnext": ConvNextConfig}
# Fields of a saved encoder config that the backbone config recomputes or must not inherit.
_DERIVED_FIELDS = ("out_features", "out_indices", "stage_names", "architectures", "transformers_version",
                   "model_type", "auto_map")
# Keys a backbone adds to its encoder (new, randomly initialized): the ViT's pyramid neck, ConvNeXt's output norms.
NEW_KEY_PREFIXES = ("fpn.", "hidden_states_norms.")


def beit_style_presets() -> list[str]:
    """The presets whose encoder is a BEiT-style ViT (the ViTs that have a transformers backbone)."""
    return [name for name, fields in PRESETS.items() if fields["backbone_config"]["model_type"] == "beit"]


def vit_out_indices(num_hidden_layers: int) -> list[int]:
    """Blocks 4, 6, 8 and 12 of 12 scaled to `num_hidden_layers` blocks (1-based, strictly increasing): 8, 12, 16, 24
    of 24 (mmdet's ViT-L), 1, 2, 3, 4 of 4."""
    if num_hidden_layers < len(VIT_OUT_BLOCKS_OF_12):
        raise ValueError(
            f"The ViT pyramid reads {len(VIT_OUT_BLOCKS_OF_12)} blocks; this encoder has only {num_hidden_layers}: "
            f"use an encoder of at least {len(VIT_OUT_BLOCKS_OF_12)} blocks."
        )
    indices = []
    for block in VIT_OUT_BLOCKS_OF_12:
        index = max(1, num_hidden_layers * block // 12)
        indices.append(max(index, indices[-1] + 1) if indices else index)
    return indices


def backbone_config_for(encoder_config: PreTrainedConfig, out_indices: list[int] | None = None,
                        **kwargs) -> PreTrainedConfig:
    """The `BeitConfig` / `ResNetConfig` / `ConvNextConfig` of the backbone for a stock encoder's config.

    A BEiT-style ViT gets `add_fpn=True` and `out_indices` (default `vit_out_indices(depth)`, exactly 4); a ResNet or
    ConvNeXt gets `out_features=["stage1", ..., "stage4"]` unless `out_indices` is given. `kwargs` override config
    fields (e.g. `drop_path_rate`). A plain `ViTModel` config is refused: transformers has no `ViTBackbone`.
    """
    model_type = encoder_config.model_type
    if model_type == "vit":
        raise ValueError(
            "transformers has no ViTBackbone, so a plain ViT encoder cannot feed a dense head; use a BEiT-style ViT "
            f"(an A2MIM checkpoint or export of the presets {', '.join(beit_style_presets())})."
        )
    if model_type not in _BACKBONE_CONFIGS:
        raise ValueError(f"No backbone for a {model_type!r} encoder; dense heads take {', '.join(_BACKBONE_CONFIGS)}.")
    fields = {key: value for key, value in encoder_config.to_dict().items() if key not in _DERIVED_FIELDS}
    if model_type == "beit":
        fields.update(add_fpn=True, out_indices=list(out_indices or vit_out_indices(encoder_config.num_hidden_layers)))
    elif out_indices is not None:
        fields["out_indices"] = list(out_indices)
    else:
        fields["out_features"] = list(CNN_STAGES)
    fields.update(kwargs)
    return _BACKBONE_CONFIGS[model_type](**fields)


def _backbone_state_dict(backbone: PreTrainedModel, encoder: PreTrainedModel) -> tuple[dict, list[str]]:
    """The encoder's tensors under the backbone's names, and the encoder keys dropped on purpose (its final norm)."""
    state_dict = encoder.state_dict()
    model_type = encoder.config.model_type
    dropped = []
    if model_type == "beit":
        dropped = [key for key in state_dict if key.startswith(("pooler.layernorm.", "layernorm."))]
        return {f"beit.{key}": value for key, value in state_dict.items() if key not in dropped}, dropped
    if model_type == "convnext":
        renamed = {}
        for key, value in state_dict.items():
            if key.startswith("layernorm."):
                if "stage4" not in backbone.out_features:
                    dropped.append(key)
                    continue
                key = "hidden_states_norms.stage4." + key.removeprefix("layernorm.")
            renamed[key] = value
        return renamed, dropped
    return dict(state_dict), dropped


def load_encoder_into_backbone(backbone: PreTrainedModel, encoder: PreTrainedModel) -> list[str]:
    """Copy a stock `BeitModel` (fine-tuning form) / `ResNetModel` / `ConvNextModel`'s weights into an existing
    `BeitBackbone` / `ResNetBackbone` / `ConvNextBackbone` (e.g. `upernet.backbone` or
    `detr.model.backbone.model` in transformers 5.24, whose BatchNorms DETR made frozen ones), strictly.

    Returns the backbone keys that stay new (`fpn.*`, ConvNeXt's `hidden_states_norms.stage1-3.*`); any other missing
    key, any unexpected one or a shape mismatch raises `ValueError` naming them. The encoder's final norm is handled
    as the module docstring says (logged when dropped).
    """
    backbone_type, encoder_type = backbone.config.model_type, encoder.config.model_type
    if backbone_type != encoder_type or type(backbone).__name__ != f"{type(encoder).__name__[:-len('Model')]}Backbone":
        raise ValueError(
            f"Cannot load a {type(encoder).__name__} into a {type(backbone).__name__}: the encoder and the backbone "
            "must be of the same family (BeitModel -> BeitBackbone, ResNetModel -> ResNetBackbone, ...)."
        )
    state_dict, dropped = _backbone_state_dict(backbone, encoder)
    try:
        result = backbone.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise ValueError(f"The encoder does not fit the backbone ({type(backbone).__name__}): {error}") from None
    not_loaded = [key for key in backbone.state_dict() if key not in state_dict]
    new = [key for key in not_loaded if key.startswith(NEW_KEY_PREFIXES)]
    missing = [key for key in not_loaded if key not in new]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"The encoder does not fit the backbone ({type(backbone).__name__}): missing {missing}, unexpected "
            f"{result.unexpected_keys}; build the backbone with backbone_config_for(encoder.config)."
        )
    if dropped:
        logger.info("Backbone: the encoder's final norm %s is not used (the backbone has no final norm).", dropped)
    logger.info("Backbone: %d encoder tensors loaded into the %s; new: %s.", len(state_dict), type(backbone).__name__,
                new or "none")
    return new


def note_vit_resolution(backbone_config: PreTrainedConfig, input_sizes: set[int], inputs: str) -> None:
    """Log how a BEiT backbone runs on inputs (`input_sizes`, described by `inputs`) other than its pretraining
    resolution.

    transformers' `BeitModel` (5.24) adapts to any input size at every forward: it interpolates the absolute
    position embeddings bicubically (`BeitEmbeddings.interpolate_pos_encoding`) and resizes the relative position
    bias tables bilinearly to the new window (`BeitRelativePositionBias`). The parameters keep their pretraining
    shape (so the saved model runs at any size too); mmseg and mmdet instead resize them once at load and train the
    larger tables.
    """
    if backbone_config.model_type != "beit":
        return
    size = backbone_config.image_size
    native = size[0] if isinstance(size, (list, tuple)) else size
    if input_sizes != {native}:
        logger.warning(
            f"The BEiT backbone was pretrained at {native} px; at {inputs} its position embeddings and relative "
            f"position bias tables are interpolated at every forward (their parameters stay at {native} px)."
        )
