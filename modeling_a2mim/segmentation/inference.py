"""Whole-image and sliding-window inference (mmseg's `slide` mode, the ViT ADE20K protocol)."""

import torch


def sliding_window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Window starts along one side: every `stride`, the last window flush with the end (mmseg's grid)."""
    count = max(size - crop + stride - 1, 0) // stride + 1
    return sorted({min(index * stride, max(size - crop, 0)) for index in range(count)})


@torch.no_grad()
def slide_logits(model, pixel_values: torch.Tensor, crop: int, stride: int) -> torch.Tensor:
    """Logits `(B, num_labels, H, W)` averaged over `crop` x `crop` windows every `stride` pixels; an image side
    smaller than `crop` is padded with zeros (the normalized mean) for the window and cropped back."""
    batch, _, height, width = pixel_values.shape
    logits = counts = None
    for top in sliding_window_starts(height, crop, stride):
        for left in sliding_window_starts(width, crop, stride):
            window = pixel_values[:, :, top:top + crop, left:left + crop]
            h, w = window.shape[-2:]
            if (h, w) != (crop, crop):
                window = torch.nn.functional.pad(window, (0, crop - w, 0, crop - h))
            output = model(pixel_values=window).logits[:, :, :h, :w].float()
            if logits is None:
                logits = output.new_zeros(batch, output.shape[1], height, width)
                counts = output.new_zeros(1, 1, height, width)
            logits[:, :, top:top + h, left:left + w] += output
            counts[:, :, top:top + h, left:left + w] += 1
    return logits / counts


@torch.no_grad()
def predict_logits(model, pixel_values: torch.Tensor, eval_mode: str, crop: int, stride: int) -> torch.Tensor:
    """Logits `(B, num_labels, H, W)` of `pixel_values` `(B, 3, H, W)` in `eval_mode` ("whole" or "slide")."""
    if eval_mode == "slide":
        return slide_logits(model, pixel_values, crop, stride)
    return model(pixel_values=pixel_values).logits.float()
