#!/usr/bin/env python
"""Compare pretrained encoders without fine-tuning: linear probe and k-NN top-1 on frozen features.

    python run_linear_probe.py --model_name_or_path ./a2mim-vit --output_dir ./probe
"""

import json
import logging
import os
import sys
from dataclasses import dataclass, field

import torch
from transformers import set_seed

from modeling_a2mim.data import SkippedImageCounter
from modeling_a2mim.finetuning.arguments import FinetuningDataArguments, ModelArguments
from modeling_a2mim.finetuning.labels import (
    check_trainable_labels,
    label_map_to,
    resolve_label_column,
    samples_per_class,
)
from modeling_a2mim.finetuning.metrics import load_accuracy_metric
from modeling_a2mim.finetuning.models import load_classifier, native_image_size, normalization
from modeling_a2mim.finetuning.probe import POOLINGS, extract_features, knn_predict, linear_probe_predict
from modeling_a2mim.finetuning.transforms import (
    ClassificationBatchTransform,
    build_eval_image_processor,
    collate_classification,
)
from modeling_a2mim.training.arguments import prepare_splits
from modeling_a2mim.training.cli import parse_script_arguments, run_main
from modeling_a2mim.training.files import write_text_atomically
from modeling_a2mim.training.output_lock import lock_output_dir

logger = logging.getLogger(__name__)


@dataclass
class ProbeArguments:
    output_dir: str = field(metadata={"help": "Where to write probe_results.json and all_results.json."})
    image_size: int | None = field(default=None, metadata={"help": "Input resolution (default: the checkpoint's)."})
    batch_size: int = field(default=64, metadata={"help": "Images per forward pass."})
    knn_k: int = field(default=20, metadata={"help": "Neighbours of the k-NN classifier."})
    knn_temperature: float = field(default=0.07, metadata={"help": "Temperature of the k-NN vote weights."})
    probe_regularization: float = field(
        default=1.0, metadata={"help": "Inverse L2 strength C of the logistic-regression probe."}
    )
    pooling: str = field(
        default="head",
        metadata={
            "help": "Features: 'head' (what the classifier head sees: the cls token for ViT, mean-pooled patch tokens "
            "for BEiT, pooled features for ResNet) or 'mean' (the mean of the last layer's patch tokens, the usual "
            "probe of a MIM-pretrained ViT, whose cls token MIM does not train).",
            "choices": list(POOLINGS),
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of label-scarce subsets and the probe."})
    use_cpu: bool = field(default=False, metadata={"help": "Run on the CPU even when an accelerator is present."})


def features_of(model, dataset, label_map, image_column, label_column, image_processor, counter, batch_size,
                pooling):
    dataset.set_transform(ClassificationBatchTransform(image_column, label_column, image_processor, counter,
                                                       label_map))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_classification)
    return extract_features(model, loader, pooling)


def main():
    model_args, data_args, probe_args, _ = parse_script_arguments((ModelArguments, FinetuningDataArguments, ProbeArguments))
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO,
                        handlers=[logging.StreamHandler(sys.stdout)])
    output_lock = lock_output_dir(probe_args.output_dir)
    set_seed(probe_args.seed)
    if data_args.streaming:
        raise ValueError("The probes need the whole feature matrix; drop --streaming.")
    hub_kwargs = {"cache_dir": model_args.cache_dir, "token": model_args.token}
    train, evaluation, image_column = prepare_splits(data_args, probe_args.seed, **hub_kwargs)
    if evaluation is None:
        raise ValueError("The probes need an evaluation split: add --validation_files FILE (or --validation_dir), or "
                         "hold out a fraction with --train_val_split 0.1.")
    label_column, labels, label_map = resolve_label_column(train, data_args.label_column_name)
    if data_args.train_samples_per_class is not None:
        train = samples_per_class(train, label_column, data_args.train_samples_per_class, probe_args.seed, label_map)
    check_trainable_labels(train, label_column, labels, label_map)

    model, checkpoint_processor, statistics_source = load_classifier(
        model_args.model_name_or_path, model_args.model_preset, labels=labels,
        image_size=probe_args.image_size, revision=model_args.model_revision, **hub_kwargs,
    )
    device = "cuda" if torch.cuda.is_available() and not probe_args.use_cpu else "cpu"
    model.to(device)
    size = probe_args.image_size or native_image_size(model, checkpoint_processor)
    image_processor = build_eval_image_processor(size, *normalization(checkpoint_processor))
    counter = SkippedImageCounter()
    common = (image_column, label_column, image_processor, counter, probe_args.batch_size, probe_args.pooling)
    train_features, train_labels = features_of(model, train, label_map, *common)
    eval_features, eval_labels = features_of(model, evaluation, label_map_to(evaluation, label_column, labels), *common)

    metric = load_accuracy_metric()
    knn = knn_predict(train_features, train_labels, eval_features, len(labels), probe_args.knn_k,
                      probe_args.knn_temperature)
    probe = linear_probe_predict(train_features, train_labels, eval_features, probe_args.probe_regularization,
                                 seed=probe_args.seed)
    results = {
        "knn_accuracy": metric.compute(predictions=knn, references=eval_labels)["accuracy"],
        "linear_probe_accuracy": metric.compute(predictions=probe, references=eval_labels)["accuracy"],
        "train_samples": int(len(train_labels)),
        "eval_samples": int(len(eval_labels)),
        "feature_dim": int(train_features.shape[1]),
        "pooling": probe_args.pooling,
        "image_statistics": statistics_source,
        "skipped_images": counter.value,
    }
    logger.info("Probe results: %s", results)
    text = json.dumps(results, indent=4, sort_keys=True) + "\n"
    for name in ("probe_results.json", "all_results.json"):
        write_text_atomically(os.path.join(probe_args.output_dir, name), text)
    output_lock.release()
    return results


if __name__ == "__main__":
    run_main(main, "run_linear_probe.py")
