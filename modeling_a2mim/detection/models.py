"""The stock DETR-family detector on a pretrained encoder, and which backbone parameters train.

Two traps of transformers 5.24 that this module handles (see the README's "Detection" section):
- `DetrForObjectDetection` / `ConditionalDetrForObjectDetection` build their backbone with `load_backbone(config)`:
  random weights whatever `backbone_config` says. `build_detector` copies the encoder into it strictly
  (`load_encoder_into_backbone`).
- Their conv encoder means to train ResNet stages 2-4 but matches the names `"stage.1"`... that `ResNetBackbone`
  does not have (`encoder.stages.N`), so the whole ResNet is frozen in `__init__` (checked on 5.24: a detector built
  from its config trains 0 ResNet parameters; `from_pretrained` replaces the frozen parameters by the loaded ones,
  which all train). `apply_backbone_freezing` sets the protocol's trainable set explicitly after every construction.
"""

import logging
import re
from dataclasses import dataclass

from transformers import (
    AutoImageProcessor,
    AutoModelForObjectDetection,
    ConditionalDetrConfig,
    ConditionalDetrForObjectDetection,
    ConditionalDetrImageProcessor,
    DetrConfig,
    DetrForObjectDetection,
    DetrImageProcessor,
    PreTrainedModel,
)

from ..backbones import backbone_config_for, load_encoder_into_backbone, note_vit_resolution
from ..training.model_sources import load_model_config
from ..transfer import TransferSource

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detector:
    config_class: type
    model_class: type
    image_processor_class: type
    description: str


# DETR and Conditional DETR read one feature map (the backbone's last), so both take the same single-scale backbone.
# Conditional DETR converges 6-10x faster (conditional cross-attention), which is what a CPU run can afford.
DETECTORS = {
    "conditional_detr": Detector(ConditionalDetrConfig, ConditionalDetrForObjectDetection,
                                 ConditionalDetrImageProcessor, "Conditional DETR (Meng et al. 2021)"),
    "detr": Detector(DetrConfig, DetrForObjectDetection, DetrImageProcessor, "DETR (Carion et al. 2020)"),
}
DETECTOR_MODEL_TYPES = {name: detector.config_class.model_type for name, detector in DETECTORS.items()}

# Backbone parameter name -> its stage (0 = stem / patch embedding, i = stage or block i).
_STAGE_PATTERNS = {
    "resnet": [(re.compile(r"^embedder\."), None), (re.compile(r"^encoder\.stages\.(\d+)\."), 1)],
    "convnext": [(re.compile(r"^embeddings\."), None), (re.compile(r"^encoder\.stages\.(\d+)\."), 1),
                 (re.compile(r"^hidden_states_norms\.stage(\d+)\."), 0)],
    "beit": [(re.compile(r"^beit\.embeddings\."), None), (re.compile(r"^beit\.layers\.(\d+)\."), 1)],
}


def detector_backbone(model: PreTrainedModel) -> PreTrainedModel:
    """The `*Backbone` inside a DETR-family detector (`model.model.backbone.model` in transformers 5.24)."""
    return model.model.backbone.model


def single_scale_backbone_config(encoder_config):
    """The backbone DETR / Conditional DETR read: a CNN's stage 4 (stride 32, DETR's C5), a BEiT-style ViT's last
    block (stride 16, no pyramid neck: the detectors read only the last map)."""
    if encoder_config.model_type == "beit":
        return backbone_config_for(encoder_config, out_indices=[encoder_config.num_hidden_layers], add_fpn=False)
    return backbone_config_for(encoder_config, out_indices=[4])


def backbone_stage(model_type: str, name: str) -> int | None:
    """The stage of backbone parameter `name` (0 = stem), `None` for parameters outside the stages."""
    for pattern, offset in _STAGE_PATTERNS[model_type]:
        match = pattern.match(name)
        if match:
            return 0 if offset is None else int(match.group(1)) + offset
    return None


def apply_backbone_freezing(model: PreTrainedModel, freeze_stages: int = -1) -> str:
    """Make the backbone train as `freeze_stages` says (mmdet's `frozen_stages`): -1 everything (the MoCo / SparK /
    A2MIM detection protocol), 0 all but the stem (patch embedding), N the stages (ViT: blocks) after N. Undoes the
    DETR family's ResNet freezing. BatchNorm stays frozen (the DETR family replaces it by a frozen BatchNorm with the
    encoder's statistics in `__init__`; a stock detector cannot hold the protocol's SyncBN). Returns a one-line
    description for the log and the model card."""
    backbone = detector_backbone(model)
    model_type = backbone.config.model_type
    trained = frozen = 0
    for name, parameter in backbone.named_parameters():
        stage = backbone_stage(model_type, name)
        trains = freeze_stages < 0 or stage is None or stage > freeze_stages
        parameter.requires_grad_(trains)
        trained, frozen = trained + trains, frozen + (not trains)
    which = ("every stage trains" if freeze_stages < 0 else
             "stem frozen" if freeze_stages == 0 else f"stem and stages 1-{freeze_stages} frozen")
    return (f"--freeze_backbone_stages {freeze_stages}: {which} ({trained} of {trained + frozen} backbone parameter "
            "tensors train); BatchNorm frozen with the encoder's statistics (the DETR family's FrozenBatchNorm2d), "
            "LayerNorm trains")


@dataclass
class DetectorSize:
    """The detector's transformer (DETR's defaults: 256 wide, 6 + 6 layers, 8 heads, 2048 FFN, auxiliary losses)."""

    num_queries: int = 100
    d_model: int = 256
    encoder_layers: int = 6
    decoder_layers: int = 6
    attention_heads: int = 8
    ffn_dim: int = 2048
    auxiliary_loss: bool = True  # the DETR papers' decoding losses at every decoder layer (transformers: off)

    def config_kwargs(self) -> dict:
        return {
            "auxiliary_loss": self.auxiliary_loss,
            "num_queries": self.num_queries, "d_model": self.d_model, "encoder_layers": self.encoder_layers,
            "decoder_layers": self.decoder_layers, "encoder_attention_heads": self.attention_heads,
            "decoder_attention_heads": self.attention_heads, "encoder_ffn_dim": self.ffn_dim,
            "decoder_ffn_dim": self.ffn_dim,
        }


def _label_kwargs(labels: list[str]) -> dict:
    return {"id2label": dict(enumerate(labels)), "label2id": {label: index for index, label in enumerate(labels)}}


def detection_image_processor(detector: str, image_square_size: int, image_mean, image_std):
    """The detector's stock image processor: longest side resized to `image_square_size`, padded to a square
    (the transformers example's `--image_square_size`), normalized with the encoder's pretraining statistics."""
    return DETECTORS[detector].image_processor_class(
        size={"max_height": image_square_size, "max_width": image_square_size}, do_pad=True,
        pad_size={"height": image_square_size, "width": image_square_size},
        image_mean=list(image_mean), image_std=list(image_std),
    )


def build_detector(source: TransferSource, detector: str, labels: list[str], size: DetectorSize,
                   image_square_size: int) -> tuple[PreTrainedModel, object, list[str]]:
    """`(detector with the encoder's weights in its backbone, its image processor, backbone keys left new)`."""
    if detector not in DETECTORS:
        raise ValueError(f"Unknown --detector {detector!r}; use one of {', '.join(DETECTORS)}.")
    spec = DETECTORS[detector]
    backbone_config = single_scale_backbone_config(source.encoder.config)
    note_vit_resolution(backbone_config, {image_square_size}, f"{image_square_size} px images (--image_square_size)")
    config = spec.config_class(backbone_config=backbone_config, num_labels=len(labels), **_label_kwargs(labels),
                               **size.config_kwargs())
    model = spec.model_class(config)
    new = load_encoder_into_backbone(detector_backbone(model), source.encoder)
    processor = detection_image_processor(detector, image_square_size, source.image_processor.image_mean,
                                          source.image_processor.image_std)
    return model, processor, new


def is_saved_detector(model_name_or_path: str, **hub_kwargs) -> bool:
    """Whether `model_name_or_path` holds a DETR-family detector (to continue training or evaluate)."""
    return load_model_config(model_name_or_path, **hub_kwargs).model_type in DETECTOR_MODEL_TYPES.values()


def load_saved_detector(model_name_or_path: str, **hub_kwargs) -> tuple[PreTrainedModel, object]:
    """A saved detector and its image processor, as plain transformers loads them."""
    model = AutoModelForObjectDetection.from_pretrained(model_name_or_path, **hub_kwargs)
    try:
        processor = AutoImageProcessor.from_pretrained(model_name_or_path, **hub_kwargs)
    except (OSError, ValueError) as error:
        raise ValueError(f"{model_name_or_path} has no image processor (preprocessor_config.json): {error}") from None
    return model, processor

