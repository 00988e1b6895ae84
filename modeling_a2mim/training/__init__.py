"""Training utilities shared by `run_pretraining.py` and `run_finetuning.py`."""
