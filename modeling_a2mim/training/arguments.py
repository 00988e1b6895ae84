"""Data arguments shared by the scripts, and the loading of their train / eval splits."""

from dataclasses import dataclass, field

from ..data import find_image_column, load_image_dataset, without_image_decoding

EVAL_SPLIT_NAMES = ("validation", "valid", "val", "test")
EMPTY_MESSAGE = "The data source has no examples: check the path, glob or dataset name"


@dataclass
class DataArguments:
    """Where the images come from. With no source argument the embedded Fashion-MNIST subset is used."""

    dataset_name: str | None = field(
        default=None, metadata={"help": "A Hub dataset id (e.g. ILSVRC/imagenet-1k) or a local dataset folder/script."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset configuration name."})
    train_dir: str | None = field(default=None, metadata={"help": "A folder of training images (imagefolder)."})
    validation_dir: str | None = field(
        default=None, metadata={"help": "A folder of evaluation images (imagefolder), like --validation_files."}
    )
    data_files: list[str] | None = field(
        default=None, metadata={"help": "Training files or globs: parquet, arrow, or image files."}
    )
    validation_files: list[str] | None = field(
        default=None,
        metadata={"help": "Evaluation files or globs (parquet, arrow, or image files), evaluated whole: the validation "
                          "split next to any training source, or alone for --do_eval only (alias --validation_file, "
                          "the transformers examples' name).",
                  "aliases": ["--validation_file"]},
    )
    image_column_name: str | None = field(
        default=None, metadata={"help": "The image column; auto-detected when the dataset has exactly one."}
    )
    streaming: bool = field(
        default=False, metadata={"help": "Stream the data (IterableDataset) instead of downloading it; needs --max_steps."}
    )
    shuffle_buffer_size: int = field(
        default=10_000, metadata={"help": "Examples in the shuffle buffer of a streamed dataset (reshuffled each epoch)."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training examples (for debugging or quick runs)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N eval examples."})
    train_val_split: float | None = field(
        default=None,
        metadata={"help": "Fraction of the training data held out for evaluation when the source has no validation "
                          "split (not available with --streaming). The name of the transformers examples; "
                          "--validation_split is an alias. Unlike the examples' 0.15 nothing is held out by default.",
                  "aliases": ["--validation_split"]},
    )

    def __post_init__(self):
        if self.train_val_split is not None and not 0 < self.train_val_split < 1:
            raise ValueError(f"--train_val_split {self.train_val_split} must lie strictly between 0 and 1, e.g. 0.05.")
        for name in ("max_train_samples", "max_eval_samples", "shuffle_buffer_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{name} {value} must be a positive integer.")

    @property
    def source_description(self) -> str:
        """A short human-readable name of the data source (for logs and the model card)."""
        evaluation = self.validation_dir or ", ".join(self.validation_files or [])
        if self.dataset_name:
            train = self.dataset_name + (f" ({self.dataset_config_name})" if self.dataset_config_name else "")
        elif self.train_dir:
            train = f"image folder {self.train_dir}"
        elif self.data_files:
            train = "files " + ", ".join(self.data_files)
        elif evaluation:
            return f"evaluation data {evaluation}"
        else:
            return "embedded Fashion-MNIST subset (modeling_a2mim/data/fashion_mnist_mini)"
        return train + (f"; evaluation data {evaluation}" if evaluation else "")


def _check_not_empty(dataset, split: str, streaming: bool) -> None:
    empty = next(iter(dataset), None) is None if streaming else len(dataset) == 0
    if empty:
        raise ValueError(f"The {split} split is empty. {EMPTY_MESSAGE} (and --max_train_samples / --max_eval_samples).")


def prepare_splits(data_args: DataArguments, seed: int, cache_dir: str | None = None, token: str | None = None,
                   need_train: bool = True):
    """`(train_dataset or None, eval_dataset or None, image_column)` for the script arguments.

    Both datasets keep their image column undecoded (`{"bytes", "path"}`) so that the collator can skip unreadable
    files. The eval split is `validation_dir`/`validation_files`, else the source's `validation` (or `test`) split,
    else `train_val_split` of the training data when that is set. Without `need_train` (evaluation only) the train
    split may be missing (`None`). A streamed training set is shuffled with a `shuffle_buffer_size` buffer
    (reshuffled per epoch through `set_epoch`). It is not sharded here: Trainer/accelerate shard it over processes.
    Raises `ValueError` for a missing train split, a wrong image column or an empty split.
    """
    try:
        dataset = load_image_dataset(
            dataset_name=data_args.dataset_name,
            dataset_config_name=data_args.dataset_config_name,
            train_dir=data_args.train_dir,
            validation_dir=data_args.validation_dir,
            data_files=data_args.data_files,
            validation_files=data_args.validation_files,
            streaming=data_args.streaming,
            cache_dir=cache_dir,
            token=token,
        )
    except ValueError as error:
        if "corresponds to no data" not in str(error):  # `datasets`' message for a split without examples
            raise
        raise ValueError(f"{EMPTY_MESSAGE} ({data_args.source_description}).") from error
    eval_name = _eval_split_name(dataset, need_train)
    train = dataset.get("train")
    image_column = find_image_column(train if train is not None else dataset[eval_name], data_args.image_column_name)
    dataset = {name: without_image_decoding(split, image_column) for name, split in dataset.items()
               if name in ("train", eval_name)}
    train, eval_dataset = select_splits(dataset, data_args, seed, need_train)
    return train, eval_dataset, image_column


def _eval_split_name(dataset, need_train: bool) -> str | None:
    """The evaluation split's name in `dataset` (`EVAL_SPLIT_NAMES` order), or `None`; a `ValueError` when the train
    split is missing but needed (or nothing is left to evaluate)."""
    eval_name = next((name for name in EVAL_SPLIT_NAMES if name in dataset), None)
    if "train" not in dataset and (need_train or eval_name is None):
        raise ValueError(f"The data source has no 'train' split (it has {list(dataset)}); give training data with "
                         "--dataset_name, --train_dir or --data_files.")
    return eval_name


def select_splits(dataset, data_args: DataArguments, seed: int, need_train: bool = True):
    """`(train or None, eval or None)` of a loaded `{split: dataset}`: the eval split is the source's `validation`
    (or `valid`, `val`, `test`) split, else `train_val_split` of the training data when that is set; then
    `max_train_samples` / `max_eval_samples`, the empty-split checks and the shuffle of a streamed training set (see
    `prepare_splits`). Shared by the scripts whose data is not a single image column (segmentation)."""
    eval_name = _eval_split_name(dataset, need_train)
    train = dataset.get("train")
    eval_dataset = dataset[eval_name] if eval_name else None

    if eval_dataset is None and data_args.train_val_split:
        if data_args.streaming:
            raise ValueError(
                "--train_val_split cannot hold out a fraction of a streamed dataset of unknown length; give a source "
                "with a validation split (e.g. --validation_dir) or drop --streaming."
            )
        _check_not_empty(train, "train", streaming=False)
        parts = train.train_test_split(test_size=data_args.train_val_split, seed=seed)
        train, eval_dataset = parts["train"], parts["test"]

    if train is not None and data_args.max_train_samples is not None:
        train = _first(train, data_args.max_train_samples, data_args.streaming)
    if eval_dataset is not None and data_args.max_eval_samples is not None:
        eval_dataset = _first(eval_dataset, data_args.max_eval_samples, data_args.streaming)
    if train is not None:
        _check_not_empty(train, "train", data_args.streaming)
    if eval_dataset is not None:
        _check_not_empty(eval_dataset, "eval", data_args.streaming)
    if train is not None and data_args.streaming:
        train = train.shuffle(seed=seed, buffer_size=data_args.shuffle_buffer_size)
    return train, eval_dataset


def _first(dataset, n: int, streaming: bool):
    """The first `n` examples of a (streamed or map-style) dataset."""
    return dataset.take(n) if streaming else dataset.select(range(min(n, len(dataset))))
