"""The model card (`README.md`) written next to a checkpoint."""

import os

from huggingface_hub import ModelCard, ModelCardData

from .files import write_text_atomically

CARD_TEMPLATE = """---
{card_data}
---

# {model_name}

{summary}

## Training

| | |
|---|---|
{training_rows}

## Results

| metric | value |
|---|---|
{metric_rows}

## Usage

```python
{usage}
```

A2MIM: Li et al., "Architecture-Agnostic Masked Image Modeling -- From ViT back to CNN", ICML 2023.
"""


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_model_card(
    output_dir: str,
    model_name: str,
    summary: str,
    dataset: str,
    training: dict,
    metrics: dict | None = None,
    datasets: list[str] | None = None,
    tags: list[str] | None = None,
    pipeline_tag: str | None = None,
    auto_class: str = "AutoModelForMaskedImageModeling",
    repo_or_path: str | None = None,
    stock_checkpoint: bool = False,
) -> ModelCard:
    """Write `<output_dir>/README.md` (atomically) and return the card.

    `training` lists what was run (e.g. preset, steps, batch size); `metrics` the results (e.g. final loss,
    accuracy). `datasets` are Hub dataset ids for the card metadata (local sources are only described in text).
    `stock_checkpoint`: the checkpoint is a stock transformers class, so the usage snippet needs no A2MIM code.
    """
    repo_or_path = repo_or_path or model_name
    if stock_checkpoint:
        usage = f'from transformers import {auto_class}\n\nmodel = {auto_class}.from_pretrained("{repo_or_path}")'
    else:
        usage = (
            f"import modeling_a2mim  # registers A2MIM with the Auto classes\nfrom transformers import {auto_class}\n\n"
            f'model = {auto_class}.from_pretrained("{repo_or_path}")\n'
            f"# or, without installing the package, from the code saved with the checkpoint:\n"
            f'model = {auto_class}.from_pretrained("{repo_or_path}", trust_remote_code=True)'
        )
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        tags=["a2mim", "masked-image-modeling", *(tags or [])],
        datasets=datasets or None,
        pipeline_tag=pipeline_tag,
    )
    rows = {"dataset": dataset, **training}
    card = ModelCard(
        CARD_TEMPLATE.format(
            card_data=card_data.to_yaml(),
            model_name=model_name,
            summary=summary,
            training_rows="\n".join(f"| {key} | {_format(value)} |" for key, value in rows.items()),
            metric_rows="\n".join(f"| {key} | {_format(value)} |" for key, value in (metrics or {}).items())
            or "| (none) | |",
            usage=usage,
        )
    )
    write_text_atomically(os.path.join(output_dir, "README.md"), str(card))
    return card
