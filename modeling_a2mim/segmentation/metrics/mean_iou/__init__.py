"""The offline copy of the Hub's `mean_iou` metric (an `evaluate` module: `evaluate.load(<this folder>)`)."""
