"""The Fashion-MNIST scene generator shared by the segmentation and detection scripts."""

import numpy as np
import pytest

from modeling_a2mim.data.scenes import GARMENT_ID2LABEL, SCENE_ID2LABEL, build_scene, scene_dataset


def _pool(classes, count=12, seed=0):
    """`count` blob-shaped 28x28 garments with labels drawn from `classes`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    images = []
    for _ in range(count):
        radius = rng.uniform(6, 13)
        images.append(np.where((yy - 14) ** 2 + (xx - 14) ** 2 <= radius**2, 255, 0).astype(np.uint8))
    return np.stack(images), rng.choice(classes, size=count)


def test_label_maps():
    assert SCENE_ID2LABEL[0] == "background" and len(SCENE_ID2LABEL) == 11
    assert all(SCENE_ID2LABEL[index + 1] == name for index, name in GARMENT_ID2LABEL.items())
    assert GARMENT_ID2LABEL[9] == "Ankle boot"


def test_masks_and_boxes_agree():
    """Each garment's box is the extent of its mask pixels, its area their count; garments never overlap."""
    images, labels = _pool(range(10), count=4)
    labels = np.arange(4)  # distinct classes, so that every object has its own mask value
    scene = build_scene(images, labels, 96, np.random.default_rng(3))
    mask = np.asarray(scene["annotation"])
    assert scene["image"].mode == "RGB" and scene["image"].size == (96, 96)
    assert scene["annotation"].mode == "L" and mask.shape == (96, 96)
    objects = scene["objects"]
    assert len(objects["bbox"]) >= 2
    assert sorted(np.unique(mask).tolist()) == [0] + sorted(c + 1 for c in objects["category"])
    for (x, y, w, h), category, area in zip(objects["bbox"], objects["category"], objects["area"]):
        rows, cols = np.nonzero(mask == category + 1)
        assert [x, y, w, h] == [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
        assert area == len(rows)
        inside = mask[int(y):int(y + h), int(x):int(x + w)]
        assert set(np.unique(inside).tolist()) <= {0, category + 1}  # no other garment inside its box


def test_same_seed_same_scenes_and_prefix_stability():
    source = {"train": _pool(range(10)), "test": _pool(range(10), seed=1)}
    first = scene_dataset("train", 5, 64, seed=7, source=source)
    again = scene_dataset("train", 3, 64, seed=7, source=source)
    other = scene_dataset("train", 3, 64, seed=8, source=source)
    assert first["image_id"] == [0, 1, 2, 3, 4]
    for index in range(3):
        assert np.array_equal(np.asarray(first[index]["image"]), np.asarray(again[index]["image"]))
        assert np.array_equal(np.asarray(first[index]["annotation"]), np.asarray(again[index]["annotation"]))
        assert first[index]["objects"] == again[index]["objects"]
    assert not all(np.array_equal(np.asarray(first[i]["image"]), np.asarray(other[i]["image"])) for i in range(3))


def test_splits_draw_from_their_own_images():
    """Train scenes use only training garments, test scenes only held-out ones (here: disjoint class sets)."""
    source = {"train": _pool([0, 1, 2, 3, 4]), "test": _pool([5, 6, 7, 8, 9], seed=1)}
    train = scene_dataset("train", 6, 64, seed=0, source=source)
    test = scene_dataset("test", 6, 64, seed=0, source=source)
    train_classes = {c for objects in train["objects"] for c in objects["category"]}
    test_classes = {c for objects in test["objects"] for c in objects["category"]}
    assert train_classes and train_classes <= {0, 1, 2, 3, 4}
    assert test_classes and test_classes <= {5, 6, 7, 8, 9}
    assert train.features["objects"]["category"].feature.names == list(GARMENT_ID2LABEL.values())


def test_embedded_source():
    dataset = scene_dataset("test", 2, 64, seed=0)
    mask = np.asarray(dataset[0]["annotation"])
    assert mask.max() <= 10 and (mask > 0).any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "validation"}, "must be 'train' or 'test'"),
        ({"num_scenes": 0}, "at least 1"),
        ({"canvas_size": 8}, "too small"),
        ({"source": 3}, "Unknown scene source"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"split": "train", "num_scenes": 2, "canvas_size": 64, "seed": 0,
                 "source": {"train": _pool(range(10))}, **kwargs}
    with pytest.raises(ValueError, match=message):
        scene_dataset(**arguments)
