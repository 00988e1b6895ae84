"""Batches for A2MIM pretraining: decode + transform images, skip unreadable ones, draw block masks."""

import os

import torch
from torch.utils.data import get_worker_info

from ..masking import BlockMaskGenerator
from .images import SkippedImageCounter, decode_or_none
from .sample_positions import SAMPLE_POSITION_KEY, sample_seed
from .transforms import PretrainingTransform


def _process_rank() -> int:
    """This process's rank in a distributed run (0 when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


def mask_seed(seed: int, rank: int, worker_seed: int | None) -> int:
    """Seed of the mask generator of one (rank, data loader worker): distinct per rank and per worker.

    `worker_seed` is `get_worker_info().seed` (torch draws it from the seeded main generator for every worker at
    each epoch, so it differs between workers and epochs yet is reproducible), or `None` in the main process.
    """
    base = seed if worker_seed is None else worker_seed
    return (base + 1_000_003 * rank) % (2**63)


class MaskingCollator:
    """Collates dataset examples into `{"pixel_values": (B, 3, H, W), "bool_masked_pos": (B, g, g)}`.

    Each example either holds `pixel_values` already (a `(3, H, W)` tensor) or an undecoded image in
    `image_column`, which is decoded to RGB with `decode_or_none` and passed through `transform`. Unreadable images
    are dropped from the batch and counted in `counter`. `extra_columns` maps example keys to batch keys for numeric
    columns to pass through as tensors (e.g. `{"label": "labels"}`).

    The masks come from a `torch.Generator` owned by the current (rank, worker), seeded with `mask_seed`, so
    different workers and ranks draw different masks, reproducibly for a given `seed`. With `fixed_masks=True` (for
    evaluation) a worker's generator is seeded from its worker id instead of the per-epoch worker seed, and
    `restart()` rewinds it, so that every pass over the same data in the same order draws the same masks.

    Examples that carry their position in the run (`SAMPLE_POSITION_KEY`, added by `with_sample_positions`, as the
    scripts do for the training set) instead get their mask and their augmentation from a generator seeded with
    `sample_seed(seed, position)`: a resumed run, another number of processes or (map-style) of workers draw the same
    masks and crops for the same sample at the same step.
    """

    def __init__(
        self,
        mask_generator: BlockMaskGenerator,
        transform=None,
        image_column: str = "image",
        counter: SkippedImageCounter | None = None,
        seed: int = 0,
        extra_columns: dict[str, str] | None = None,
        fixed_masks: bool = False,
    ):
        self.mask_generator = mask_generator
        self.transform = transform
        self.image_column = image_column
        self.counter = counter if counter is not None else SkippedImageCounter()
        self.seed = seed
        self.extra_columns = dict(extra_columns or {})
        self.fixed_masks = fixed_masks
        self.restart()

    @classmethod
    def from_config(cls, config, image_processor=None, train: bool = True, **kwargs) -> "MaskingCollator":
        """The collator of an `A2MIMConfig`'s recipe: its block masks and `PretrainingTransform.from_config`'s train
        transform, or (`train=False`, for evaluation) its center-crop transform with `fixed_masks=True`. `kwargs`
        go to `__init__` (image_column, counter, seed, extra_columns)."""
        transform = PretrainingTransform.from_config(config, image_processor, train=train)
        return cls(BlockMaskGenerator.from_config(config), transform, fixed_masks=not train, **kwargs)

    def restart(self) -> None:
        """Forget the mask generators: the next batch of each (process, worker) starts a fresh one. Call it before a
        data loader starts its workers (workers that persist across passes keep theirs)."""
        self._generator = None
        self._generator_owner = None

    def generator(self) -> torch.Generator:
        """The mask generator of the calling (process, worker); created on first use in that worker."""
        info = get_worker_info()
        worker_seed = None
        if info is not None:
            worker_seed = self.seed + 1 + info.id if self.fixed_masks else info.seed
        owner = (os.getpid(), worker_seed)
        if self._generator_owner != owner:
            self._generator = torch.Generator().manual_seed(mask_seed(self.seed, _process_rank(), worker_seed))
            self._generator_owner = owner
        return self._generator

    def _pixel_values(self, example) -> torch.Tensor | None:
        position = example.get(SAMPLE_POSITION_KEY)
        if position is None:
            return self._decode_and_transform(example)
        with torch.random.fork_rng(devices=[]):  # the transform draws from the global generator
            torch.manual_seed(sample_seed(self.seed, position))
            return self._decode_and_transform(example)

    def _masks(self, examples: list[dict]) -> torch.BoolTensor:
        positions = [example.get(SAMPLE_POSITION_KEY) for example in examples]
        if any(position is None for position in positions):
            return self.mask_generator(len(examples), generator=self.generator())
        return torch.cat([
            self.mask_generator(1, generator=torch.Generator().manual_seed(sample_seed(self.seed, (*position, 1))))
            for position in positions
        ])

    def _decode_and_transform(self, example) -> torch.Tensor | None:
        if "pixel_values" in example:
            return torch.as_tensor(example["pixel_values"])
        if self.image_column not in example:
            raise KeyError(
                f"Examples have no column {self.image_column!r} (they have {sorted(example)}); "
                "pass the right --image_column_name."
            )
        image = decode_or_none(example[self.image_column], self.counter)
        if image is None:
            return None
        return self.transform(image) if self.transform is not None else image

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        kept, pixel_values = [], []
        for example in examples:
            pixels = self._pixel_values(example)
            if pixels is not None:
                kept.append(example)
                pixel_values.append(pixels)
        if not pixel_values:
            raise ValueError(
                f"Every image of a batch of {len(examples)} was unreadable ({self.counter.value} skipped so far); "
                "check the dataset's files or --image_column_name."
            )
        batch = {
            "pixel_values": torch.stack(pixel_values),
            "bool_masked_pos": self._masks(kept),
        }
        for column, key in self.extra_columns.items():
            batch[key] = torch.tensor([example[column] for example in kept])
        return batch
