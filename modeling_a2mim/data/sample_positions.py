"""Each training example's position in the run, so that its random masks and crops can be a function of it.

A resumed run restarts its processes (and data loader workers), so any generator seeded once per process replays the
draws of step 1 after a resume. `with_sample_positions` wraps the training set so that every example carries
`SAMPLE_POSITION_KEY`: `(epoch, index)` for a map-style dataset (its index in the dataset), `(epoch, worker, index)`
for a streamed one (its index in that data loader worker's share of the pass). `MaskingCollator` seeds the example's
mask and augmentation from `(seed, position)`, so an interrupted-and-resumed run draws what an uninterrupted one draws
at the same step, whatever the number of processes and (for map-style data) of workers.
"""

import hashlib

from torch.utils.data import Dataset, IterableDataset, get_worker_info

SAMPLE_POSITION_KEY = "a2mim_sample_position"


def sample_seed(seed: int, position) -> int:
    """A 63-bit seed mixing the run's `seed` and a sample's position (stable across processes and Python runs)."""
    text = ":".join(str(int(part)) for part in (seed, *position))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


class _EpochTracking:
    """Wraps `dataset`, keeping the epoch Trainer passes to `set_epoch` (and forwarding it to `dataset`)."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


class PositionedDataset(_EpochTracking, Dataset):
    """A map-style dataset whose examples also hold `(epoch, index)` under `SAMPLE_POSITION_KEY`.

    Trainer (through accelerate) calls `set_epoch` before every pass; data loader workers get the dataset (and so the
    epoch) when the pass starts (with `--dataloader_persistent_workers` they would keep the first pass's epoch).
    """

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], SAMPLE_POSITION_KEY: (self.epoch, int(index))}

    def __getitems__(self, indices: list[int]) -> list[dict]:
        if hasattr(self.dataset, "__getitems__"):
            examples = self.dataset.__getitems__(indices)
        else:
            examples = [self.dataset[index] for index in indices]
        return [{**example, SAMPLE_POSITION_KEY: (self.epoch, int(index))}
                for example, index in zip(examples, indices)]


class PositionedStream(_EpochTracking, IterableDataset):
    """A streamed dataset whose examples also hold `(epoch, worker, index in the worker's share of the pass)`.

    `set_epoch` is forwarded to the stream (a `datasets.IterableDataset` reshuffles with it). A resumed streamed run
    re-reads its pass from the start and skips the trained batches (`StreamPositionCallback`), so the positions of
    the examples it trains on are those of the uninterrupted run.
    """

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        for index, example in enumerate(self.dataset):
            yield {**example, SAMPLE_POSITION_KEY: (self.epoch, worker, index)}


def with_sample_positions(dataset):
    """`dataset` wrapped so that its examples carry their position in the run (see the module docstring)."""
    if isinstance(dataset, IterableDataset):
        return PositionedStream(dataset)
    return PositionedDataset(dataset)

