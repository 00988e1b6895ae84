"""A2MIM configuration: a stock encoder config (`backbone_config`) plus the A2MIM masking and loss fields."""

import copy
import math
import warnings

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .presets import PRESET_SOURCES, PRESETS

VIT_FAMILY = ("beit", "vit")
RESNET_FAMILY = ("resnet",)
CONVNEXT_FAMILY = ("convnext",)
SUPPORTED_BACKBONES = VIT_FAMILY + RESNET_FAMILY + CONVNEXT_FAMILY

# Encoder sizes that must be positive integers (checked before torch builds tensors of them).
_BACKBONE_SIZE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
                         "image_size", "num_channels", "embedding_size", "hidden_sizes", "depths")
# The type each A2MIM field must have (checked before its value, so that a string gives a clear error, not a
# `TypeError` from a comparison).
_FIELD_TYPES = {
    "image_size": int, "mask_patch_size": int, "mask_ratio": (int, float), "mask_layer": int,
    "mask_token_mode": str, "mask_gamma_init": (int, float), "mean_fill": bool, "spatial_loss": str,
    "focal_l1_alpha": (int, float), "focal_l1_gamma": (int, float), "unmask_weight": (int, float),
    "frequency_loss_weight": (int, float), "frequency_unmask_weight": (int, float),
    "initializer_range": (int, float),
}
_OPTIONAL_FIELDS = ("image_size", "mask_layer", "mask_gamma_init")  # None: derived from the encoder, or unused
_TYPE_NAMES = {int: "an integer", (int, float): "a number", str: "a string", bool: "true or false"}


class A2MIMConfig(PreTrainedConfig):
    r"""
    Configuration of an A2MIM model (Li et al., "Architecture-Agnostic Masked Image Modeling", ICML 2023).

    Args:
        backbone_config (`BeitConfig`, `ViTConfig`, `ResNetConfig`, `ConvNextConfig` or `dict`, *optional*):
            The encoder. A dict needs a `model_type`. Defaults to the BEiT-style ViT-B/16 of the `vit-base` preset.
        image_size (`int`, *optional*):
            Input resolution. For ViT-like encoders it defaults to the backbone's and is written back into it.
            Defaults to 224 for the CNN families.
        mask_patch_size (`int`, *optional*, defaults to 32):
            Side in pixels of one mask block.
        mask_ratio (`float`, *optional*, defaults to 0.6):
            Fraction of blocks masked per image; exactly `ceil(num_blocks * mask_ratio)` are masked.
        mask_layer (`int`, *optional*):
            Where the mask token enters: before transformer block `K` (0 = right after the patch embedding), at the
            input of ResNet stage `K`, or right after ConvNeXt stage `K`'s downsampling layer (the stem for 0).
            Defaults to 0 for ViT-like encoders and to the last stage for the CNN families.
        mask_token_mode (`str`, *optional*, defaults to `"residual"`):
            `"residual"`: `x + token * m`; `"replace"`: `x * (1 - m) + token * m`.
        mask_gamma_init (`float`, *optional*):
            When set, a learnable per-channel `gamma` (initialized to this value) rescales masked features before
            the residual token: `x * (1 - m) + gamma * x * m`. 1e-6 in the ResNet recipe, unused for ViT.
        mean_fill (`bool`, *optional*, defaults to `True`):
            Fill masked pixels with each image's per-channel mean before the encoder.
        spatial_loss (`str`, *optional*, defaults to `"l1"`):
            `"l1"` or `"focal_l1"` (`|d| * (2 * sigmoid(alpha * |d|) - 1) ** gamma`) on the masked pixels.
        focal_l1_alpha (`float`, *optional*, defaults to 0.2), focal_l1_gamma (`float`, *optional*, defaults to 1.0):
            Focal L1 parameters.
        unmask_weight (`float`, *optional*, defaults to 0.0):
            Weight of unmasked pixels in the spatial loss.
        frequency_loss_weight (`float`, *optional*, defaults to 0.1):
            Weight `lambda` of the focal frequency loss (0 disables it).
        frequency_unmask_weight (`float`, *optional*, defaults to 0.0):
            Share `w_u` of the prediction kept on unmasked pixels in the frequency loss input.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Std of the truncated normal init of the mask token and the decoder.
        image_mean (`list[float]`, *optional*), image_std (`list[float]`, *optional*):
            The per-channel statistics the pixels (input and reconstruction target) are normalized with, one value per
            channel. `run_pretraining.py` records those of its image processor here, so that `save_encoder()` and
            every script that starts from the checkpoint normalize as pretraining did. `None`: ImageNet's.
        preset (`str`, *optional*):
            The named preset this config was built from (`from_preset` sets it). Saved with the checkpoint, so that
            training continued from it keeps that preset's recipe.

    Example:

    ```python
    >>> from modeling_a2mim import A2MIMConfig, A2MIMForMaskedImageModeling
    >>> config = A2MIMConfig.from_preset("resnet-50")
    >>> model = A2MIMForMaskedImageModeling(config)
    ```"""

    model_type = "a2mim"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="beit",
            init_kwargs={k: v for k, v in PRESETS["vit-base"]["backbone_config"].items() if k != "model_type"},
        ),
    }

    backbone_config: dict | PreTrainedConfig | None = None
    image_size: int | None = None
    mask_patch_size: int = 32
    mask_ratio: float | int = 0.6
    mask_layer: int | None = None
    mask_token_mode: str = "residual"
    mask_gamma_init: float | int | None = None
    mean_fill: bool = True
    spatial_loss: str = "l1"
    focal_l1_alpha: float | int = 0.2
    focal_l1_gamma: float | int = 1.0
    unmask_weight: float | int = 0.0
    frequency_loss_weight: float | int = 0.1
    frequency_unmask_weight: float | int = 0.0
    initializer_range: float = 0.02
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    preset: str | None = None

    def __post_init__(self, **kwargs):
        self._check_field_types()
        backbone_type = self._backbone_type(self.backbone_config)
        if backbone_type not in SUPPORTED_BACKBONES:
            raise ValueError(
                f"backbone_config has model_type={backbone_type!r}, which A2MIM does not support; "
                f"use one of {list(SUPPORTED_BACKBONES)} (BeitConfig, ViTConfig, ResNetConfig or ConvNextConfig)."
            )
        # `PreTrainedConfig.__post_init__` sets the attention implementation on every sub-config, to `None` (the
        # default) when none is asked of this config; keep the backbone config's own choice (e.g.
        # `BeitConfig(attn_implementation="eager")`) unless this config asks for one, as composite models do.
        backbone_attention = self._backbone_attn_implementation(self.backbone_config)
        super().__post_init__(**kwargs)
        self._check_backbone_sizes()
        if kwargs.get("attn_implementation") is None and backbone_attention is not None:
            self.backbone_config._attn_implementation_internal = backbone_attention
        if self.is_vit_family:
            backbone_size = self.backbone_config.image_size
            if self.image_size is None:
                self.image_size = backbone_size if isinstance(backbone_size, int) else backbone_size[0]
            self.backbone_config.image_size = self.image_size
        elif self.image_size is None:
            self.image_size = 224
        if self.mask_layer is None:
            self.mask_layer = 0 if self.is_vit_family else len(self.backbone_config.depths) - 1
        self._check_a2mim_fields()

    @staticmethod
    def _backbone_type(backbone_config):
        if backbone_config is None:
            return "beit"
        if isinstance(backbone_config, dict):
            return backbone_config.get("model_type", "beit")
        return getattr(backbone_config, "model_type", type(backbone_config).__name__)

    @staticmethod
    def _backbone_attn_implementation(backbone_config) -> str | None:
        if isinstance(backbone_config, dict):
            return backbone_config.get("attn_implementation", backbone_config.get("_attn_implementation_internal"))
        return getattr(backbone_config, "_attn_implementation", None)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "A2MIMConfig":
        """Config of a named preset (`A2MIMConfig.presets()` lists them); keyword arguments override fields."""
        if name not in PRESETS:
            raise ValueError(f"Unknown A2MIM preset {name!r}. Known presets: {', '.join(cls.presets())}.")
        kwargs = copy.deepcopy(PRESETS[name])
        kwargs.update(overrides)
        return cls(**kwargs)

    @staticmethod
    def presets() -> list[str]:
        return list(PRESETS)

    @staticmethod
    def describe_presets() -> dict[str, str]:
        """`{preset: one line}`: the results row it reproduces, its openmixup config and the reported top-1."""
        lines = {}
        for name, source in PRESET_SOURCES.items():
            top1 = f"fine-tuned top-1 {source.top1}" if source.top1 is not None else "no fine-tuning number"
            lines[name] = f"{source.row}; {source.config}; {top1}"
        return lines

    # ----- derived geometry -------------------------------------------------------------------------------------
    @property
    def family(self) -> str:
        """The encoder family: `"vit"` (BEiT / ViT encoders), `"resnet"` or `"convnext"`."""
        if self.is_vit_family:
            return "vit"
        return "convnext" if self.backbone_config.model_type in CONVNEXT_FAMILY else "resnet"

    @property
    def is_vit_family(self) -> bool:
        return self.backbone_config.model_type in VIT_FAMILY

    @property
    def num_channels(self) -> int:
        return self.backbone_config.num_channels

    @property
    def num_mask_layers(self) -> int:
        """Number of valid `mask_layer` values: transformer blocks or CNN stages."""
        if self.is_vit_family:
            return self.backbone_config.num_hidden_layers
        return len(self.backbone_config.depths)

    def _stage_strides(self) -> list[int]:
        """Downsampling factor of each CNN stage (after the stride-4 stem)."""
        first = 2 if self.family == "resnet" and self.backbone_config.downsample_in_first_stage else 1
        return [first] + [2] * (len(self.backbone_config.depths) - 1)

    @property
    def mask_layer_stride(self) -> int:
        """Stride (pixels per feature cell) of the features where the mask token is added."""
        if self.is_vit_family:
            return self._patch_size
        # ResNet: the input of stage k; ConvNeXt: the output of stage k's downsampling layer.
        entered_stages = self.mask_layer + (1 if self.family == "convnext" else 0)
        return 4 * math.prod(self._stage_strides()[:entered_stages])

    @property
    def mask_layer_channels(self) -> int:
        """Channels of the features where the mask token is added."""
        if self.is_vit_family:
            return self.backbone_config.hidden_size
        if self.family == "convnext":
            return self.backbone_config.hidden_sizes[self.mask_layer]
        if self.mask_layer == 0:
            return self.backbone_config.embedding_size
        return self.backbone_config.hidden_sizes[self.mask_layer - 1]

    @property
    def encoder_stride(self) -> int:
        """Stride of the last feature map, which the decoder upsamples back to pixels."""
        if self.is_vit_family:
            return self._patch_size
        return 4 * math.prod(self._stage_strides())

    @property
    def encoder_hidden_size(self) -> int:
        """Channels of the last feature map."""
        if self.is_vit_family:
            return self.backbone_config.hidden_size
        return self.backbone_config.hidden_sizes[-1]

    @property
    def mask_grid_size(self) -> int:
        """Side of the block mask: `image_size // mask_patch_size`."""
        return self.image_size // self.mask_patch_size

    @property
    def _patch_size(self) -> int:
        patch = self.backbone_config.patch_size
        return patch if isinstance(patch, int) else patch[0]

    # ----- validation --------------------------------------------------------------------------------------------
    def _check_field_types(self):
        """`ValueError` for an A2MIM field of the wrong type (e.g. a string from `--config_overrides mask_ratio=abc`),
        before any comparison would raise a `TypeError`."""
        for field, kind in _FIELD_TYPES.items():
            value = getattr(self, field)
            if value is None and field in _OPTIONAL_FIELDS:
                continue
            if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
                raise ValueError(f"A2MIMConfig.{field}={value!r} is invalid: it must be {_TYPE_NAMES[kind]}.")

    def _check_backbone_sizes(self):
        """`ValueError` for an encoder size that is not a positive integer (torch would fail deep inside)."""
        for field in _BACKBONE_SIZE_FIELDS:
            value = getattr(self.backbone_config, field, None)
            if value is None:
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
                raise ValueError(
                    f"A2MIMConfig.backbone_config.{field}={value!r} is invalid: it must be a positive integer"
                    f"{' (a list of them)' if isinstance(value, (list, tuple)) else ''}."
                )

    def _check_a2mim_fields(self):
        """Raise `ValueError` naming the field, its value and what would be valid."""

        def fail(field, message):
            raise ValueError(f"A2MIMConfig.{field}={getattr(self, field)!r} is invalid: {message}")

        for field in ("image_mean", "image_std"):
            value = getattr(self, field)
            if value is None:
                continue
            if not (isinstance(value, (list, tuple)) and len(value) == self.num_channels
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                fail(field, f"it must be a list of {self.num_channels} numbers, one per channel.")
            if field == "image_std" and not all(v > 0 for v in value):
                fail(field, "every standard deviation must be > 0.")
        if (self.image_mean is None) != (self.image_std is None):
            fail("image_mean", f"give image_mean and image_std together (image_std={self.image_std!r}).")

        if not 0 < self.mask_ratio < 1:
            fail("mask_ratio", "it must lie strictly between 0 and 1, e.g. 0.6.")
        if self.mask_patch_size <= 0:
            fail("mask_patch_size", "it must be a positive number of pixels, e.g. 32.")
        if self.image_size <= 0 or self.image_size % self.mask_patch_size:
            fail(
                "image_size",
                f"it must be a positive multiple of mask_patch_size={self.mask_patch_size} "
                f"(e.g. {self.mask_patch_size * max(1, round(max(self.image_size, 1) / self.mask_patch_size))}).",
            )
        if self.image_size % self.encoder_stride:
            fail(
                "image_size",
                f"it must be a multiple of the encoder's output stride {self.encoder_stride} "
                "so that the decoder can restore full resolution.",
            )
        if not 0 <= self.mask_layer < self.num_mask_layers:
            kind = {"vit": "transformer blocks", "resnet": "ResNet stages", "convnext": "ConvNeXt stages"}[self.family]
            fail("mask_layer", f"the encoder has {self.num_mask_layers} {kind}; use 0..{self.num_mask_layers - 1}.")
        if self.mask_patch_size % self.mask_layer_stride:
            fail(
                "mask_patch_size",
                f"the features at mask_layer={self.mask_layer} have stride {self.mask_layer_stride}, so a mask "
                f"block must be a multiple of {self.mask_layer_stride} pixels (a finer mask cannot be represented "
                "there); raise mask_patch_size or lower mask_layer.",
            )
        if self.mask_token_mode not in ("residual", "replace"):
            fail("mask_token_mode", "use 'residual' (x + token * m) or 'replace' (x * (1 - m) + token * m).")
        if self.spatial_loss not in ("l1", "focal_l1"):
            fail("spatial_loss", "use 'l1' or 'focal_l1'.")
        for field in ("unmask_weight", "frequency_unmask_weight"):
            if not 0 <= getattr(self, field) <= 1:
                fail(field, "it must lie in [0, 1].")
        if self.frequency_loss_weight < 0:
            fail("frequency_loss_weight", "it must be >= 0 (0 disables the frequency loss).")
        if not self.mean_fill and self.mask_token_mode == "residual":
            warnings.warn(
                "A2MIMConfig(mean_fill=False, mask_token_mode='residual'): the encoder sees the masked pixels "
                "(the residual token only marks them), so the reconstruction task leaks its answer. For a 'no mean "
                "fill' ablation use mask_token_mode='replace'.",
                UserWarning,
                stacklevel=2,
            )


__all__ = ["A2MIMConfig"]
