"""PyTorch A2MIM: architecture-agnostic masked image modeling on stock transformers encoders.

The encoder is a stock `BeitModel`, `ViTModel`, `ResNetModel` or `ConvNextModel` (its weights keep the stock names
under `a2mim.encoder.`) and runs its own forward; A2MIM adds a learnable mask token at a middle stage through a hook on
the stock submodule there, mean-fills masked pixels, and predicts the full-resolution image with a 1x1 conv +
PixelShuffle decoder trained by a spatial and a Fourier loss.
"""

import copy
import math
import threading
from dataclasses import dataclass

import torch
import transformers
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import (
    BeitModel,
    ConvNextModel,
    PreTrainedModel,
    ResNetModel,
    ViTImageProcessor,
    ViTModel,
)
from transformers import initialization as init
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import ImageClassifierOutput, MaskedImageModelingOutput
from transformers.utils import ModelOutput, logging
from transformers.utils.generic import can_return_tuple

from .configuration_a2mim import A2MIMConfig
from .losses import FocalFrequencyLoss, SpatialReconstructionLoss
from .masking import BlockMaskGenerator, mean_fill, upsample_mask

# transformers before 5.23 checkpoints a layer's whole `__call__`, its forward hooks included: the backward pass then
# recomputes the block after the model's call has ended, so a mask hook on a checkpointed block adds no token there.
_CHECKPOINTING_RERUNS_HOOKS = "__call__" in vars(GradientCheckpointingLayer)

logger = logging.get_logger(__name__)

# Files holding the remote code of a saved checkpoint, for `trust_remote_code=True`.
AUTO_MAP = {
    "AutoConfig": "configuration_a2mim.A2MIMConfig",
    "AutoModel": "modeling_a2mim.A2MIMModel",
    "AutoModelForMaskedImageModeling": "modeling_a2mim.A2MIMForMaskedImageModeling",
    "AutoModelForImageClassification": "modeling_a2mim.A2MIMForImageClassification",
}


@dataclass
class A2MIMModelOutput(ModelOutput):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, channels, height, width)`):
        Last feature map (ViT-like encoders: the normalized patch tokens reshaped to a grid; ConvNeXt: the final
        LayerNorm applied per position).
    pooler_output (`torch.FloatTensor` of shape `(batch_size, channels)`):
        ViT-like: the final norm applied to the mean of the patch tokens; ResNet: global average pooling; ConvNeXt:
        the final LayerNorm of the global average (the stock pooler).
    hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
        The stock encoder's hidden states (token sequences for ViT, feature maps for CNNs), the mask token
        applied where it enters. With a list of indices, the unselected entries are `None`.
    attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
        The stock encoder's attention weights (ViT-like encoders with eager attention).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class A2MIMMaskedImageModelingOutput(MaskedImageModelingOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`): `spatial_loss + frequency_loss_weight * frequency_loss`.
    reconstruction (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
        Predicted (normalized) image at full resolution.
    bool_masked_pos (`torch.FloatTensor` of shape `(batch_size, grid, grid)`):
        The block mask used, as floats (1.0 = masked) so that outputs can be compared by subtraction.
    spatial_loss (`torch.FloatTensor` of shape `()`): Spatial loss on the masked pixels.
    frequency_loss (`torch.FloatTensor` of shape `()`): Focal frequency loss (unweighted).
    """

    bool_masked_pos: torch.BoolTensor | None = None
    spatial_loss: torch.FloatTensor | None = None
    frequency_loss: torch.FloatTensor | None = None


def normalizing_image_processor(size: int, image_mean=None, image_std=None) -> ViTImageProcessor:
    """`ViTImageProcessor` resizing to `size` x `size` and normalizing with `image_mean` / `image_std` (ImageNet's when
    not given)."""
    return ViTImageProcessor(
        size={"height": size, "width": size},
        image_mean=list(IMAGENET_DEFAULT_MEAN if image_mean is None else image_mean),
        image_std=list(IMAGENET_DEFAULT_STD if image_std is None else image_std),
    )


def build_encoder(backbone_config) -> PreTrainedModel:
    """The stock transformers encoder for `backbone_config`."""
    if backbone_config.model_type == "beit":
        return BeitModel(backbone_config, add_pooling_layer=backbone_config.use_mean_pooling)
    if backbone_config.model_type == "vit":
        return ViTModel(backbone_config, add_pooling_layer=False)
    if backbone_config.model_type == "convnext":
        return ConvNextModel(backbone_config)
    return ResNetModel(backbone_config)


class A2MIMPreTrainedModel(PreTrainedModel):
    config: A2MIMConfig
    config_class = A2MIMConfig
    base_model_prefix = "a2mim"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["BeitLayer", "ViTLayer", "ResNetConvLayer", "ResNetShortCut", "ConvNextLayer"]
    _supports_sdpa = True
    _keys_to_ignore_on_load_unexpected = [r".*relative_position_index.*"]

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, A2MIMModel) and module.mask_token is not None:
            init.trunc_normal_(module.mask_token, std=std)
            if module.mask_gamma is not None:
                init.constant_(module.mask_gamma, self.config.mask_gamma_init)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)

    def _set_gradient_checkpointing(
        self, enable: bool = True, gradient_checkpointing_func=checkpoint, every_n_layers: int = 1
    ):
        """The stock switch (transformers blocks checkpoint their own forward); refused for the CNN families, whose
        transformers encoders have no checkpointing, and for a mask token that enters at a transformer block on
        transformers versions that would recompute that block without it."""
        masks_a_block = self.config.is_vit_family and self.config.mask_layer > 0 and any(
            isinstance(module, A2MIMModel) and module.mask_token is not None for module in self.modules()
        )
        if enable and masks_a_block and _CHECKPOINTING_RERUNS_HOOKS:
            raise ValueError(
                f"Gradient checkpointing with the mask token entering at block {self.config.mask_layer} "
                f"(mask_layer > 0) needs transformers >= 5.23 (installed: {transformers.__version__}), whose "
                "checkpointed blocks keep their input hooks out of the recomputation. Upgrade transformers, or train "
                "without --gradient_checkpointing."
            )
        if enable and not self.config.is_vit_family:
            family, encoder = {"resnet": ("ResNet", "ResNetModel"), "convnext": ("ConvNeXt", "ConvNextModel")}[
                self.config.family
            ]
            raise ValueError(
                f"Gradient checkpointing is not available for the {family} family: transformers' {encoder} has none. "
                "Lower --per_device_train_batch_size and raise --gradient_accumulation_steps instead, or use a "
                "ViT-family preset."
            )
        super()._set_gradient_checkpointing(enable, gradient_checkpointing_func, every_n_layers)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Like `PreTrainedModel.save_pretrained`; the config's `auto_map` names every A2MIM Auto class."""
        self.config.auto_map = {**AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def stock_encoder(self) -> PreTrainedModel:
        """The encoder as a stock `BeitModel` / `ViTModel` / `ResNetModel` / `ConvNextModel` (a copy, in memory).

        A BEiT encoder comes in its fine-tuning form (`use_mean_pooling=True`): its final LayerNorm becomes the
        `fc_norm` over mean-pooled patch tokens, which is what the stock classifier pools with.
        """
        encoder_config = copy.deepcopy(self.config.backbone_config)
        encoder_config.architectures = None
        state_dict = {k: v.clone() for k, v in self.base_model.encoder.state_dict().items()}
        if encoder_config.model_type == "beit" and not encoder_config.use_mean_pooling:
            encoder_config.use_mean_pooling = True
            for name in ("weight", "bias"):
                state_dict[f"pooler.layernorm.{name}"] = state_dict.pop(f"layernorm.{name}")
        encoder = build_encoder(encoder_config)
        encoder.load_state_dict(state_dict, strict=True)
        return encoder

    def save_encoder(self, save_directory, image_processor=None, **kwargs) -> None:
        """Save `stock_encoder()` as a stock checkpoint plus an image processor.

        `AutoModelForImageClassification.from_pretrained(save_directory, num_labels=N)` then builds the stock
        classifier with every encoder weight loaded. `image_processor` defaults to a `ViTImageProcessor` at the
        model's resolution with the statistics pretraining normalized with (`config.image_mean` / `image_std`, which
        `run_pretraining.py` records), ImageNet's when the config records none (logged). Every rank of a distributed
        run may call it: only the main process writes (the others return at once, so synchronize before they read
        the folder).
        """
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        self.stock_encoder().save_pretrained(save_directory, **kwargs)
        if image_processor is None:
            config = self.config
            image_processor = normalizing_image_processor(config.image_size, config.image_mean, config.image_std)
            if config.image_mean is None:
                logger.warning("save_encoder: the config records no image statistics (image_mean / image_std); "
                               "writing ImageNet's into %s/preprocessor_config.json.", save_directory)
        image_processor.save_pretrained(save_directory)


@dataclass
class _MaskedCall:
    """What the encoder hooks of one `A2MIMModel.forward` call need: the model, its block mask, and the input of the
    final norm (captured for the mean-pooled output of ViT-like encoders)."""

    model: "A2MIMModel"
    bool_masked_pos: torch.Tensor | None
    final_norm_input: torch.Tensor | None = None


class _ActiveCalls(threading.local):
    """The `A2MIMModel.forward` call in progress in this thread (`None` outside one).

    Thread-local, so that hooks registered once on the shared encoder never see another thread's mask, and each hook
    checks `call.model is self`, so that another model's call (even one nested in this one) never reaches them. The
    forward sets it around the encoder call and restores the previous value in `finally` (a clean state after an
    exception). A plain attribute of a thread-local object, unlike a `ContextVar`, is traced by `torch.compile` as an
    ordinary attribute mutation: no graph break, the mask flows through the compiled graph as a tensor, and the
    restore runs as a replayed side effect.
    """

    def __init__(self):
        # Runs once per thread (on its first access). An instance attribute, not a class default: dynamo guards on
        # the instance's `__dict__`, which a class default leaves without the key until the first call sets it.
        self.call: _MaskedCall | None = None


_ACTIVE = _ActiveCalls()


class A2MIMModel(A2MIMPreTrainedModel):
    """The stock encoder with the A2MIM mask token; returns the last feature map as `(B, C, h, w)`.

    The encoder runs its own forward. The mask token enters through a hook on the stock submodule at
    `config.mask_layer`: the patch embedding's output (ViT-like, layer 0), the input of transformer block `k` (patch
    tokens only, `k > 0`), the input of ResNet stage `k`, or the output of ConvNeXt stage `k`'s downsampling layer
    (the stem for `k = 0`).
    """

    def __init__(self, config: A2MIMConfig, add_mask_token: bool = True):
        r"""
        add_mask_token (`bool`, *optional*, defaults to `True`):
            Whether to build the mask token (and its `gamma`) and the hook that applies it. The classifier builds none:
            it never masks, and a parameter without a gradient breaks DDP without `find_unused_parameters`.
        """
        super().__init__(config)
        self.encoder = build_encoder(config.backbone_config)
        self.mask_token = self.mask_gamma = None
        if add_mask_token:
            channels = config.mask_layer_channels
            shape = (1, 1, channels) if config.is_vit_family else (1, channels, 1, 1)
            self.mask_token = nn.Parameter(torch.zeros(shape))
            if config.mask_gamma_init is not None:
                self.mask_gamma = nn.Parameter(torch.full(shape, float(config.mask_gamma_init)))
            self._register_mask_hook()
        if config.is_vit_family:
            # The input of the final norm (an identity in BEiT's mean-pooling form): the last block's tokens.
            self.encoder.layernorm.register_forward_pre_hook(self._capture_final_norm_input)
        self.post_init()

    def _register_mask_hook(self) -> None:
        encoder, layer, family = self.encoder, self.config.mask_layer, self.config.family
        if family == "resnet":
            encoder.encoder.stages[layer].register_forward_pre_hook(self._mask_stage_input)
        elif family == "convnext":
            downsampling = encoder.embeddings if layer == 0 else encoder.encoder.stages[layer].downsampling_layer[-1]
            downsampling.register_forward_hook(self._mask_downsampling_output)
        elif layer == 0:
            encoder.embeddings.patch_embeddings.register_forward_hook(self._mask_patch_embeddings)
        else:
            encoder.layers[layer].register_forward_pre_hook(self._mask_block_input)

    def get_input_embeddings(self) -> nn.Module:
        """The patch embedding (ViT-like) or the stem (CNN) of the stock encoder."""
        if self.config.is_vit_family:
            return self.encoder.get_input_embeddings()
        return self.encoder.embedder if self.config.family == "resnet" else self.encoder.embeddings

    def _final_norm(self) -> nn.Module:
        encoder = self.encoder
        if self.config.backbone_config.model_type == "beit" and self.config.backbone_config.use_mean_pooling:
            return encoder.pooler.layernorm
        return encoder.layernorm

    def add_mask_token(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Apply the mask token to `features` where `mask` (broadcastable to them, 1 = masked) is set."""
        mask = mask.to(features.dtype)
        if self.config.mask_token_mode == "replace":
            return features * (1 - mask) + self.mask_token * mask
        if self.mask_gamma is not None:
            features = features * (1 - mask) + self.mask_gamma * features * mask
        return features + self.mask_token * mask

    def _active_call(self) -> _MaskedCall | None:
        call = _ACTIVE.call
        return call if call is not None and call.model is self else None

    def _active_mask(self) -> torch.Tensor | None:
        call = self._active_call()
        return None if call is None else call.bool_masked_pos

    def _masked_tokens(self, tokens: torch.Tensor, bool_masked_pos: torch.Tensor) -> torch.Tensor:
        """`(B, N, D)` patch tokens of a square grid with the mask token applied."""
        side = math.isqrt(tokens.shape[1])
        token_mask = upsample_mask(bool_masked_pos, self.config.mask_grid_size, side, tokens.dtype)
        return self.add_mask_token(tokens, token_mask.flatten(2).transpose(1, 2))

    def _mask_patch_embeddings(self, module, args, patch_tokens):
        bool_masked_pos = self._active_mask()
        return None if bool_masked_pos is None else self._masked_tokens(patch_tokens, bool_masked_pos)

    def _mask_block_input(self, module, args):
        bool_masked_pos = self._active_mask()
        if bool_masked_pos is None:
            return None
        hidden_states = args[0]
        patch_tokens = self._masked_tokens(hidden_states[:, 1:], bool_masked_pos)
        return (torch.cat((hidden_states[:, :1], patch_tokens), dim=1), *args[1:])

    def _masked_feature_map(self, features: torch.Tensor, bool_masked_pos: torch.Tensor) -> torch.Tensor:
        """`(B, C, h, w)` features with the mask token applied."""
        mask = upsample_mask(bool_masked_pos, self.config.mask_grid_size, features.shape[-1], features.dtype)
        return self.add_mask_token(features, mask)

    def _mask_stage_input(self, module, args):
        bool_masked_pos = self._active_mask()
        return None if bool_masked_pos is None else (self._masked_feature_map(args[0], bool_masked_pos), *args[1:])

    def _mask_downsampling_output(self, module, args, features):
        bool_masked_pos = self._active_mask()
        return None if bool_masked_pos is None else self._masked_feature_map(features, bool_masked_pos)

    def _capture_final_norm_input(self, module, args):
        call = self._active_call()
        if call is not None:
            call.final_norm_input = args[0]

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        output_hidden_states: bool | list[int] | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> A2MIMModelOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size, image_size)`):
            Images, already mean-filled where masked when used for pretraining.
        bool_masked_pos (`torch.BoolTensor` of shape `(batch_size, grid, grid)` or `(batch_size, grid * grid)`, *optional*):
            Block mask (`grid = image_size // mask_patch_size`); the mask token is added at `config.mask_layer`.
            Without it the features are exactly the stock encoder's.
        output_hidden_states (`bool` or `list[int]`, *optional*):
            The stock encoder's hidden states (all, or the selected indices), the mask token applied where it enters.
        output_attentions (`bool`, *optional*):
            The stock encoder's attention weights (ViT-like encoders with eager attention).
        """
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        if bool_masked_pos is not None and self.mask_token is None:
            raise ValueError(
                "bool_masked_pos was given to an A2MIMModel built with add_mask_token=False (as the classifier's is): "
                "it has no mask token. Build A2MIMModel(config) to mask."
            )
        call = _MaskedCall(self, bool_masked_pos)
        outer_call, _ACTIVE.call = _ACTIVE.call, call
        try:
            outputs = self.encoder(
                pixel_values,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
                return_dict=True,
                **kwargs,
            )
        finally:
            _ACTIVE.call = outer_call
        hidden_states = outputs.hidden_states
        if self.config.is_vit_family:
            final_norm = self._final_norm()
            patch_tokens = final_norm(call.final_norm_input[:, 1:])
            side = math.isqrt(patch_tokens.shape[1])
            feature_map = patch_tokens.transpose(1, 2).reshape(patch_tokens.shape[0], -1, side, side)
            pooled = final_norm(call.final_norm_input[:, 1:].mean(dim=1))
        elif self.config.family == "convnext":
            # The decoder reads the final LayerNorm applied per position; the stock pooler normalizes the mean.
            feature_map = self.encoder.layernorm(outputs.last_hidden_state.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            pooled = outputs.pooler_output
        else:
            feature_map = outputs.last_hidden_state
            pooled = outputs.pooler_output.flatten(1)
            hidden_states = _select_hidden_states(hidden_states, output_hidden_states)
        return A2MIMModelOutput(
            last_hidden_state=feature_map,
            pooler_output=pooled,
            hidden_states=hidden_states,
            attentions=getattr(outputs, "attentions", None),
        )


def _select_hidden_states(hidden_states, output_hidden_states):
    """transformers' selective capture for an encoder that only returns all hidden states (ResNet): entries that
    `output_hidden_states` (a list of indices, negative ones allowed) does not select become `None`."""
    if hidden_states is None or isinstance(output_hidden_states, bool):
        return hidden_states
    selected = output_hidden_states if isinstance(output_hidden_states, (list, tuple)) else [output_hidden_states]
    keep = {index % len(hidden_states) for index in selected}
    return tuple(state if index in keep else None for index, state in enumerate(hidden_states))


class A2MIMDecoder(nn.Module):
    """`(B, C, h, w)` features at stride `s` -> `(B, num_channels, h * s, w * s)` pixels (1x1 conv + PixelShuffle)."""

    def __init__(self, config: A2MIMConfig):
        super().__init__()
        stride = config.encoder_stride
        self.projection = nn.Conv2d(config.encoder_hidden_size, stride**2 * config.num_channels, kernel_size=1)
        self.pixel_shuffle = nn.PixelShuffle(stride)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.pixel_shuffle(self.projection(features))


class A2MIMForMaskedImageModeling(A2MIMPreTrainedModel):
    """A2MIM pretraining: mean fill, encoder with mask token, pixel decoder, spatial + frequency loss."""

    def __init__(self, config: A2MIMConfig):
        super().__init__(config)
        self.a2mim = A2MIMModel(config)
        self.decoder = A2MIMDecoder(config)
        self.spatial_loss = SpatialReconstructionLoss(
            config.spatial_loss, config.unmask_weight, config.focal_l1_alpha, config.focal_l1_gamma
        )
        self.frequency_loss = FocalFrequencyLoss(config.frequency_unmask_weight)
        self.mask_generator = BlockMaskGenerator.from_config(config)
        self.post_init()

    def _check_inputs(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor) -> None:
        config = self.config
        if pixel_values.dim() != 4 or pixel_values.shape[1] != config.num_channels:
            raise ValueError(
                f"pixel_values has shape {tuple(pixel_values.shape)}; expected (batch, {config.num_channels}, "
                f"{config.image_size}, {config.image_size}). Convert images to {config.num_channels} channels first."
            )
        if tuple(pixel_values.shape[2:]) != (config.image_size, config.image_size):
            raise ValueError(
                f"pixel_values is {pixel_values.shape[2]}x{pixel_values.shape[3]} but the model is configured for "
                f"{config.image_size}x{config.image_size}; resize (e.g. RandomResizedCrop({config.image_size})) or "
                "set image_size in the config."
            )
        grid = config.mask_grid_size
        batch = pixel_values.shape[0]
        if tuple(bool_masked_pos.shape) not in ((batch, grid, grid), (batch, grid * grid)):
            raise ValueError(
                f"bool_masked_pos has shape {tuple(bool_masked_pos.shape)}; expected ({batch}, {grid}, {grid}) or "
                f"({batch}, {grid * grid}) for image_size={config.image_size} and "
                f"mask_patch_size={config.mask_patch_size}. BlockMaskGenerator.from_config(config) draws such masks."
            )

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.BoolTensor | None = None,
        output_hidden_states: bool | list[int] | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> A2MIMMaskedImageModelingOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size, image_size)`):
            The clean normalized images: the input (after mean fill) and the reconstruction target.
        bool_masked_pos (`torch.BoolTensor` of shape `(batch_size, grid, grid)` or `(batch_size, grid * grid)`, *optional*):
            Block mask with `grid = image_size // mask_patch_size`; drawn from the config when `None`.
        """
        if bool_masked_pos is None:
            bool_masked_pos = self.mask_generator(pixel_values.shape[0], device=pixel_values.device)
        self._check_inputs(pixel_values, bool_masked_pos)
        bool_masked_pos = bool_masked_pos.view(-1, self.config.mask_grid_size, self.config.mask_grid_size)
        pixel_mask = upsample_mask(
            bool_masked_pos, self.config.mask_grid_size, self.config.image_size, pixel_values.dtype
        )
        inputs = mean_fill(pixel_values, pixel_mask) if self.config.mean_fill else pixel_values

        outputs = self.a2mim(
            inputs,
            bool_masked_pos=bool_masked_pos,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        reconstruction = self.decoder(outputs.last_hidden_state)

        target = pixel_values.to(reconstruction.dtype)
        spatial_loss = self.spatial_loss(reconstruction, target, pixel_mask.to(reconstruction.dtype))
        if self.config.frequency_loss_weight > 0:
            frequency_loss = self.frequency_loss(reconstruction, target, pixel_mask)
            loss = spatial_loss + self.config.frequency_loss_weight * frequency_loss
        else:
            # Not `spatial_loss + 0 * zeros`: inductor (torch 2.14) folds that no-op away, and a loss that is then the
            # same buffer as the detached `spatial_loss` output comes back without its autograd graph (compiled
            # convnext-micro, whose recipe has no frequency term, failed at its first backward).
            frequency_loss = torch.zeros((), device=reconstruction.device)
            loss = spatial_loss
        return A2MIMMaskedImageModelingOutput(
            loss=loss,
            reconstruction=reconstruction,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            bool_masked_pos=bool_masked_pos.to(reconstruction.dtype),
            spatial_loss=spatial_loss.detach(),
            frequency_loss=frequency_loss.detach(),
        )


class A2MIMForImageClassification(A2MIMPreTrainedModel):
    """The encoder with the seeds' heads: linear layer on `pooler_output` (mean-pooled patch tokens + final norm
    for ViT-like encoders, global average pooling for ResNet, its final LayerNorm for ConvNeXt).

    It never masks, so it has no mask token: loading a pretraining checkpoint drops the mask token, its gamma and the
    pixel decoder without reporting them."""

    _keys_to_ignore_on_load_unexpected = [
        *A2MIMPreTrainedModel._keys_to_ignore_on_load_unexpected,
        r"^a2mim\.mask_(token|gamma)$",
        r"^decoder\.",
    ]

    def __init__(self, config: A2MIMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.a2mim = A2MIMModel(config, add_mask_token=False)
        hidden = config.encoder_hidden_size
        self.classifier = nn.Linear(hidden, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | list[int] | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices (cross-entropy), or floats for regression / multi-label, per `config.problem_type`.
        """
        outputs = self.a2mim(
            pixel_values, output_hidden_states=output_hidden_states, output_attentions=output_attentions
        )
        logits = self.classifier(outputs.pooler_output)
        # `num_items_in_batch` (from Trainer) reaches the loss, as in the stock classifiers, so that a loss summed over
        # gradient accumulation steps is normalized once (Trainer then does not divide it again).
        loss = self.loss_function(labels, logits, self.config, **kwargs) if labels is not None else None
        return ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "A2MIMPreTrainedModel",
    "A2MIMModel",
    "A2MIMForMaskedImageModeling",
    "A2MIMForImageClassification",
    "A2MIMModelOutput",
    "A2MIMMaskedImageModelingOutput",
]
