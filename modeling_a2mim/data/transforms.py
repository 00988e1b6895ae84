"""The A2MIM pretraining augmentation (RandomResizedCrop, flip, normalize) and its deterministic eval twin."""

import PIL.Image
import torch
from torchvision.transforms import v2
from transformers.image_utils import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN
from transformers.image_utils import IMAGENET_DEFAULT_STD as IMAGENET_STD

# RandomResizedCrop scale of the seed recipes: ViT crops harder than ResNet.
CROP_SCALE = {"vit": (0.67, 1.0), "resnet": (0.8, 1.0)}
CROP_RATIO = (3 / 4, 4 / 3)


def crop_scale_for(config) -> tuple[float, float]:
    """The recipe's RandomResizedCrop scale for an `A2MIMConfig`'s family."""
    return CROP_SCALE["vit" if config.is_vit_family else "resnet"]


class PretrainingTransform:
    """PIL image (any mode, converted to RGB by the caller) -> normalized float tensor `(3, image_size, image_size)`.

    `train=True`: RandomResizedCrop(image_size, scale, ratio 3/4..4/3) + horizontal flip, as in the recipe.
    `train=False`: resize the short side to `image_size` and center crop (for eval loss and reconstruction pictures).
    Randomness comes from torch's global generator, which the Trainer seeds and data loader workers re-seed.
    """

    def __init__(
        self,
        image_size: int,
        scale: tuple[float, float] = CROP_SCALE["vit"],
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        ratio: tuple[float, float] = CROP_RATIO,
        train: bool = True,
    ):
        self.image_size = image_size
        if train:
            geometry = [v2.RandomResizedCrop(image_size, scale=tuple(scale), ratio=tuple(ratio), antialias=True),
                        v2.RandomHorizontalFlip()]
        else:
            geometry = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
        self.transform = v2.Compose(
            [v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        )

    @classmethod
    def from_config(cls, config, image_processor=None, train: bool = True) -> "PretrainingTransform":
        """The recipe's transform for an `A2MIMConfig`, normalized with `image_processor`'s mean/std (ImageNet's
        when `None`)."""
        mean = image_processor.image_mean if image_processor is not None else IMAGENET_MEAN
        std = image_processor.image_std if image_processor is not None else IMAGENET_STD
        return cls(config.image_size, crop_scale_for(config), mean, std, train=train)

    def __call__(self, image: PIL.Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        return self.transform(image)
