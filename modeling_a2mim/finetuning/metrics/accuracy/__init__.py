"""The offline copy of the Hub's `accuracy` metric (an `evaluate` module: `evaluate.load(<this folder>)`)."""
