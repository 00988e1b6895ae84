"""Object detection with the DETR family on A2MIM encoders (`run_object_detection.py`)."""
