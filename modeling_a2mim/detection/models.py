"""The stock DETR-family detector on a pretrained encoder, and which backbone parameters train.

Two traps of transformers 5.24 that this module handles (see the README's "Detection" section):
- `RTDetrForObjectDetection` / `DetrForObjectDetection` / `ConditionalDetrForObjectDetection` build their backbone
  with `load_backbone(config)`: random weights whatever `backbone_config` says. `build_detector` copies the encoder
  into it strictly (`load_encoder_into_backbone`).
- DETR's and Conditional DETR's conv encoder means to train ResNet stages 2-4 but matches the names `"stage.1"`...
  that `ResNetBackbone` does not have (`encoder.stages.N`), so the whole ResNet is frozen in `__init__` (checked on
  5.24: a detector built from its config trains 0 ResNet parameters; `from_pretrained` replaces the frozen parameters
  by the loaded ones, which all train). RT-DETR freezes nothing. `apply_backbone_freezing` sets the protocol's
  trainable set explicitly after every construction.
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
    RTDetrConfig,
    RTDetrForObjectDetection,
    RTDetrImageProcessor,
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
    multi_scale: bool  # reads a CNN's strides 8, 16, 32 or BEiT's pyramid (else the backbone's last map)


# RT-DETR reads three scales through a hybrid encoder, picks its queries from the encoder's best-scoring positions
# and trains with denoising queries: on the embedded scenes it learns in hundreds of steps where Conditional DETR
# stays near mAP 0 after 32,000 (README, "Detection"). DETR and Conditional DETR read one feature map (the
# backbone's last); Conditional DETR converges 6-10x faster than DETR on COCO.
DETECTORS = {
    "rt_detr": Detector(RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessor,
                        "RT-DETR (Zhao et al. 2024)", multi_scale=True),
    "conditional_detr": Detector(ConditionalDetrConfig, ConditionalDetrForObjectDetection,
                                 ConditionalDetrImageProcessor, "Conditional DETR (Meng et al. 2021)",
                                 multi_scale=False),
    "detr": Detector(DetrConfig, DetrForObjectDetection, DetrImageProcessor, "DETR (Carion et al. 2020)",
                     multi_scale=False),
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


def multi_scale_backbone_config(encoder_config):
    """The backbone RT-DETR reads: a CNN's stages 2-4 (strides 8, 16, 32, RT-DETR's C3-C5), a BEiT-style ViT's
    Feature2Pyramid maps (`add_fpn=True`: x4, x2, x1 and x0.5 of the patch grid, the segmentation protocol's four)."""
    if encoder_config.model_type == "beit":
        return backbone_config_for(encoder_config)
    return backbone_config_for(encoder_config, out_indices=[2, 3, 4])


def _feature_strides(backbone_config) -> list[int]:
    """The stride of each map the backbone returns, in pixels."""
    if backbone_config.model_type == "beit":
        patch = backbone_config.patch_size
        return [max(1, patch // 4), max(1, patch // 2), patch, 2 * patch]
    return [2 ** (index + 1) for index in backbone_config.out_indices]


def _backbone_channels(backbone_config) -> list[int]:
    if backbone_config.model_type == "beit":
        return [backbone_config.hidden_size] * len(backbone_config.out_indices)
    return [backbone_config.hidden_sizes[index - 1] for index in backbone_config.out_indices]


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
    DETR family's ResNet freezing. Returns a one-line description for the log and the model card, which says how the
    BatchNorms run: RT-DETR's train (`detector_config`); DETR and Conditional DETR replace them by a frozen BatchNorm
    with the encoder's statistics in `__init__` (a stock detector of theirs cannot train them)."""
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
    kinds = {type(module).__name__ for module in backbone.modules()}
    norms = [*(["BatchNorm frozen with the encoder's statistics (the detector's FrozenBatchNorm2d)"]
               if any("FrozenBatchNorm" in kind for kind in kinds) else []),
             *(["BatchNorm trains (statistics of each process's batch)"] if "BatchNorm2d" in kinds else []),
             *(["LayerNorm trains"] if any("LayerNorm" in kind for kind in kinds) else [])]
    return (f"--freeze_backbone_stages {freeze_stages}: {which} ({trained} of {trained + frozen} backbone parameter "
            f"tensors train); {', '.join(norms) or 'no norms'}")


@dataclass
class DetectorSize:
    """The detector's transformer; `None` keeps the detector's own transformers default (DETR: 100 queries, 256 wide,
    6 + 6 layers, 8 heads, 2048 FFN; RT-DETR: 300 queries, 256 wide, 1 encoder + 6 decoder layers, 8 heads, 1024 FFN,
    100 denoising queries)."""

    num_queries: int | None = None
    d_model: int | None = None
    encoder_layers: int | None = None
    decoder_layers: int | None = None
    attention_heads: int | None = None
    ffn_dim: int | None = None
    auxiliary_loss: bool = True  # the DETR papers' decoding losses at every decoder layer (DETR's config: off)
    num_denoising: int | None = None  # RT-DETR's denoising queries

    @classmethod
    def of(cls, config) -> "DetectorSize":
        """The size a built detector has (its config's values, the transformers defaults included): what a card shows
        for flags left at `None`."""
        return cls(config.num_queries, config.d_model, config.encoder_layers, config.decoder_layers,
                   config.encoder_attention_heads, config.encoder_ffn_dim, config.auxiliary_loss,
                   getattr(config, "num_denoising", None))

    def config_kwargs(self) -> dict:
        kwargs = {
            "num_queries": self.num_queries, "d_model": self.d_model, "encoder_layers": self.encoder_layers,
            "decoder_layers": self.decoder_layers, "encoder_attention_heads": self.attention_heads,
            "decoder_attention_heads": self.attention_heads, "encoder_ffn_dim": self.ffn_dim,
            "decoder_ffn_dim": self.ffn_dim,
        }
        return {"auxiliary_loss": self.auxiliary_loss, **{key: value for key, value in kwargs.items()
                                                          if value is not None}}


def detector_config(detector: str, backbone_config, labels: list[str], size: DetectorSize):
    """The stock config of `detector` on `backbone_config`. RT-DETR's hybrid encoder is sized to the backbone's maps
    (channels, strides, its attention on the coarsest) and its BatchNorms train (`freeze_backbone_batch_norms=False`:
    a random-init baseline has no statistics to freeze, and the A2MIM protocol trains its norms)."""
    spec = DETECTORS[detector]
    kwargs = {**size.config_kwargs(), "id2label": dict(enumerate(labels)),
              "label2id": {label: index for index, label in enumerate(labels)}}
    if detector != "rt_detr":
        if size.num_denoising is not None:
            raise ValueError(f"--num_denoising is RT-DETR's (--detector rt_detr), not {detector}'s; drop it.")
        return spec.config_class(backbone_config=backbone_config, **kwargs)
    if size.num_denoising is not None:
        kwargs["num_denoising"] = size.num_denoising
    width, levels = kwargs.get("d_model", spec.config_class.d_model), len(backbone_config.out_indices)
    return spec.config_class(
        backbone_config=backbone_config, encoder_hidden_dim=width, encoder_in_channels=_backbone_channels(
            backbone_config), feat_strides=_feature_strides(backbone_config), num_feature_levels=levels,
        decoder_in_channels=[width] * levels, encode_proj_layers=[levels - 1], freeze_backbone_batch_norms=False,
        **kwargs)


def detection_image_processor(detector: str, image_square_size: int, image_mean, image_std):
    """The detector's stock image processor: longest side resized to `image_square_size`, padded to a square
    (the transformers example's `--image_square_size`), normalized with the encoder's pretraining statistics (RT-DETR's
    processor does not normalize by default)."""
    return DETECTORS[detector].image_processor_class(
        size={"max_height": image_square_size, "max_width": image_square_size}, do_pad=True,
        pad_size={"height": image_square_size, "width": image_square_size}, do_normalize=True,
        image_mean=list(image_mean), image_std=list(image_std),
    )


def build_detector(source: TransferSource, detector: str, labels: list[str], size: DetectorSize,
                   image_square_size: int) -> tuple[PreTrainedModel, object, list[str]]:
    """`(detector with the encoder's weights in its backbone, its image processor, backbone keys left new)`."""
    if detector not in DETECTORS:
        raise ValueError(f"Unknown --detector {detector!r}; use one of {', '.join(DETECTORS)}.")
    spec = DETECTORS[detector]
    backbone_config = (multi_scale_backbone_config if spec.multi_scale else single_scale_backbone_config)(
        source.encoder.config)
    note_vit_resolution(backbone_config, {image_square_size}, f"{image_square_size} px images (--image_square_size)")
    model = spec.model_class(detector_config(detector, backbone_config, labels, size))
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

