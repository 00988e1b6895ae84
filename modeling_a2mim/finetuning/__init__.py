"""Fine-tuning A2MIM encoders: recipes, transforms, mixing and losses, layer-wise lr decay, EMA, metrics, probes."""
