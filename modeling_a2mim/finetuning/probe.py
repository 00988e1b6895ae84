"""Frozen-feature checks of a pretrained encoder: a linear probe and a weighted k-NN classifier.

Features are what the classifier head would see (the pooled encoder output: mean-pooled patch tokens + `fc_norm`
for BEiT, the cls token for ViT, global average pooling for ResNet), captured with a hook on `model.classifier`.
"""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


@torch.no_grad()
def extract_features(model, dataloader) -> tuple[np.ndarray, np.ndarray]:
    """`(features (N, D) float32, labels (N,) int64)` of every batch of `dataloader` (`pixel_values`, `labels`)."""
    captured = []
    handle = model.classifier.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
    model.eval()
    features, labels = [], []
    device = next(model.parameters()).device
    try:
        for batch in dataloader:
            model(pixel_values=batch["pixel_values"].to(device))
            features.append(captured.pop().flatten(1).float().cpu())
            labels.append(batch["labels"])
    finally:
        handle.remove()
    return torch.cat(features).numpy(), torch.cat(labels).numpy()


def knn_predict(train_features, train_labels, test_features, num_classes: int, k: int = 20,
                temperature: float = 0.07) -> np.ndarray:
    """Weighted k-NN on cosine similarity: each of the `k` nearest training samples votes `exp(sim / temperature)`
    for its class. Returns the predicted class of every test sample, `(N_test,)`."""
    train = F.normalize(torch.as_tensor(train_features), dim=1)
    test = F.normalize(torch.as_tensor(test_features), dim=1)
    similarity, index = (test @ train.T).topk(min(k, train.shape[0]), dim=1)
    votes = torch.zeros(test.shape[0], num_classes, dtype=similarity.dtype)
    votes.scatter_add_(1, torch.as_tensor(train_labels)[index], (similarity / temperature).exp())
    return votes.argmax(dim=1).numpy()


def linear_probe_predict(train_features, train_labels, test_features, regularization: float = 1.0,
                         max_iter: int = 1000, seed: int = 0) -> np.ndarray:
    """Multinomial logistic regression (L2, inverse strength `regularization`) on standardized features.
    Returns the predicted class of every test sample, `(N_test,)`."""
    scaler = StandardScaler().fit(train_features)
    classifier = LogisticRegression(C=regularization, max_iter=max_iter, random_state=seed)
    classifier.fit(scaler.transform(train_features), train_labels)
    return classifier.predict(scaler.transform(test_features))
