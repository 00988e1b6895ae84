"""A2MIM for Hugging Face Transformers; importing this package registers it with the Auto classes."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForMaskedImageModeling,
)

from .configuration_a2mim import A2MIMConfig
from .losses import FocalFrequencyLoss, SpatialReconstructionLoss
from .masking import BlockMaskGenerator, mean_fill, upsample_mask
from .modeling_a2mim import (
    A2MIMForImageClassification,
    A2MIMForMaskedImageModeling,
    A2MIMMaskedImageModelingOutput,
    A2MIMModel,
    A2MIMModelOutput,
    A2MIMPreTrainedModel,
)

AutoConfig.register(A2MIMConfig.model_type, A2MIMConfig, exist_ok=True)
AutoModel.register(A2MIMConfig, A2MIMModel, exist_ok=True)
AutoModelForMaskedImageModeling.register(A2MIMConfig, A2MIMForMaskedImageModeling, exist_ok=True)
AutoModelForImageClassification.register(A2MIMConfig, A2MIMForImageClassification, exist_ok=True)

# Saved checkpoints carry their code (and, through `save_pretrained`, every Auto entry) for `trust_remote_code`.
A2MIMConfig.register_for_auto_class("AutoConfig")
A2MIMModel.register_for_auto_class("AutoModel")
A2MIMForMaskedImageModeling.register_for_auto_class("AutoModelForMaskedImageModeling")
A2MIMForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__version__ = "0.1.0"

__all__ = [
    "A2MIMConfig",
    "A2MIMModel",
    "A2MIMPreTrainedModel",
    "A2MIMForMaskedImageModeling",
    "A2MIMForImageClassification",
    "A2MIMModelOutput",
    "A2MIMMaskedImageModelingOutput",
    "BlockMaskGenerator",
    "SpatialReconstructionLoss",
    "FocalFrequencyLoss",
    "mean_fill",
    "upsample_mask",
]
