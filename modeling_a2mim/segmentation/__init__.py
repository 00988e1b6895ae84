"""UperNet semantic segmentation on A2MIM encoders: the helpers of `run_semantic_segmentation.py`."""
