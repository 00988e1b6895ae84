"""Frozen-feature checks of a pretrained encoder: a linear probe and a weighted k-NN classifier.

Two feature choices (`POOLINGS`): `"head"`, what the classifier head would see (mean-pooled patch tokens + `fc_norm`
for BEiT, the cls token for ViT, global average pooling for ResNet, its final LayerNorm for ConvNeXt), captured with a
hook on `model.classifier`; and `"mean"`, the mean of the encoder's last hidden state over its patch tokens (ViT/BEiT,
cls token left out) or spatial positions (CNNs), captured with a hook on `model.base_model`. Masked image modeling
trains the patch tokens, not the cls token, so `"mean"` is the usual probe of a MIM-pretrained ViT; for a ResNet both
give the same features.
"""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


POOLINGS = ("head", "mean")


def _mean_over_positions(hidden_state: torch.Tensor) -> torch.Tensor:
    """`(B, D)`: the mean over spatial positions of a `(B, C, H, W)` feature map, or over the patch tokens of a
    `(B, 1 + N, D)` token sequence (the first token, the cls token, left out)."""
    if hidden_state.dim() == 4:
        return hidden_state.mean(dim=(2, 3))
    return hidden_state[:, 1:].mean(dim=1)


@torch.no_grad()
def extract_features(model, dataloader, pooling: str = "head") -> tuple[np.ndarray, np.ndarray]:
    """`(features (N, D) float32, labels (N,) int64)` of every batch of `dataloader` (`pixel_values`, `labels`), for
    a stock classifier `model` and a `pooling` of `POOLINGS` (see the module docstring)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not one of {POOLINGS}.")
    captured = []
    if pooling == "head":
        handle = model.classifier.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
    else:
        handle = model.base_model.register_forward_hook(
            lambda module, inputs, output: captured.append(_mean_over_positions(output.last_hidden_state))
        )
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
