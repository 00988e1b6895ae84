"""Label columns of classification datasets: finding and checking them, and label-scarce subsets."""

import numpy as np
from datasets import ClassLabel, Value

from ..data.fashion_mnist import balanced_indices


def _describe(features) -> str:
    return ", ".join(f"{name} ({type(feature).__name__})" for name, feature in features.items())


def resolve_label_column(dataset, requested: str | None = None) -> tuple[str, list[str], dict | None]:
    """`(label column, class names in id order, raw value -> id map or None)` of a classification dataset.

    A `ClassLabel` column is used as is (map `None`). A string column (e.g. from csv/parquet) of a map-style dataset
    is mapped to ids in sorted order. Anything else, or a missing column, raises a `ValueError` listing the columns.
    Without `requested`: the column named `label` or `labels`, else the only `ClassLabel` column.
    """
    features = dataset.features
    if features is None:  # some streaming sources only know their columns after the first example
        features = dataset._resolve_features().features
    if requested is None:
        named = [name for name in ("label", "labels") if name in features]
        class_labels = [name for name, feature in features.items() if isinstance(feature, ClassLabel)]
        candidates = named or class_labels
        if len(candidates) != 1:
            raise ValueError(
                f"Cannot tell which column holds the labels. Columns: {_describe(features)}. "
                "Name it with --label_column_name."
            )
        requested = candidates[0]
    if requested not in features:
        raise ValueError(f"--label_column_name {requested!r} is not a column. Columns: {_describe(features)}.")
    feature = features[requested]
    if isinstance(feature, ClassLabel):
        return requested, list(feature.names), None
    if isinstance(feature, Value) and feature.dtype in ("string", "large_string") and hasattr(dataset, "unique"):
        names = sorted(dataset.unique(requested))
        return requested, names, {name: index for index, name in enumerate(names)}
    raise ValueError(
        f"Label column {requested!r} is {feature!r}, not a class label. Columns: {_describe(features)}. Cast it "
        f"first, e.g. dataset.cast_column({requested!r}, ClassLabel(names=[...])), or pick another column with "
        "--label_column_name (string labels are mapped to ids automatically for non-streaming data)."
    )


def label_map_to(dataset, label_column: str, class_names: list[str]) -> dict | None:
    """Raw label value -> id in `class_names` (a model's `id2label` order) for a dataset whose classes are a subset
    of `class_names`, or `None` when its ids already are those ids. An evaluation file that lacks some classes is
    thus evaluated whole. Raises `ValueError` naming the dataset's classes that `class_names` lacks."""
    _, names, label_map = resolve_label_column(dataset, label_column)
    unknown = [name for name in names if name not in class_names]
    if unknown:
        raise ValueError(
            f"The evaluation data has classes {unknown} that the model does not know (its labels: {class_names}); "
            "evaluate a classifier fine-tuned on these classes, or pick another --label_column_name."
        )
    model_id = {name: index for index, name in enumerate(class_names)}
    if label_map is None:  # ClassLabel ids index `names`
        mapping = {index: model_id[name] for index, name in enumerate(names)}
        return None if all(raw == mapped for raw, mapped in mapping.items()) else mapping
    return {name: model_id[name] for name in label_map}


def label_ids(dataset, label_column: str, label_map: dict | None) -> np.ndarray:
    """Integer label of every row of a map-style dataset, `(N,)`."""
    values = dataset[label_column]
    return np.asarray([label_map[value] for value in values] if label_map is not None else values, dtype=np.int64)


def check_trainable_labels(dataset, label_column: str, class_names: list[str], label_map: dict | None) -> None:
    """`ValueError` unless the training data has at least two classes, named and present (map-style data): a
    one-class classifier trains to a loss of 0 and learns nothing."""
    fix = ("check --label_column_name and the data (an image folder needs one subfolder per class; --max_train_samples "
           "keeps the first rows, which may all be of one class)")
    if len(class_names) < 2:
        raise ValueError(f"The label column {label_column!r} has {len(class_names)} class ({class_names}); a "
                         f"classifier needs at least two: {fix}.")
    if hasattr(dataset, "unique"):  # map-style: count the classes the rows actually hold
        present = np.unique(label_ids(dataset, label_column, label_map))
        if len(present) < 2:
            names = [class_names[i] for i in present]
            raise ValueError(f"The training data holds only the class {names} of {class_names} (column "
                             f"{label_column!r}); a classifier needs at least two: {fix}.")


def samples_per_class(dataset, label_column: str, per_class: int, seed: int, label_map: dict | None = None):
    """A balanced subset: `per_class` rows of every class, drawn without replacement with `seed` (in row order).

    Raises `ValueError` naming the classes that have fewer rows.
    """
    if per_class <= 0:
        raise ValueError(f"--train_samples_per_class={per_class} must be a positive number of images per class.")
    labels = label_ids(dataset, label_column, label_map)
    classes, counts = np.unique(labels, return_counts=True)
    short = {int(c): int(n) for c, n in zip(classes, counts) if n < per_class}
    if short:
        raise ValueError(
            f"--train_samples_per_class={per_class}, but some classes have fewer training images (class id: count) "
            f"{short}; lower the number."
        )
    return dataset.select(balanced_indices(labels, per_class, seed).tolist())
