# Dev and CI installs pin the torch build that lies on this machine's disk; setup.py keeps ranges for users.
PYTHON ?= python3
TORCH_PINS = torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= outputs/demo

.PHONY: install test demo clean

install:
	$(PYTHON) -m pip install -q --disable-pip-version-check $(TORCH_PINS) -e ".[test]"

test: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PYTHON) -m pytest -n 2 --durations=15 tests

demo: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PYTHON) run_pretraining.py --output_dir $(DEMO_DIR) \
		--model_preset vit-micro --max_steps 1000 --per_device_train_batch_size 64 \
		--save_steps 500 --logging_steps 50 --use_cpu
	@echo "Demo done: checkpoint, model card and reconstructions.png in $(DEMO_DIR)"

clean:
	rm -rf outputs .pytest_cache
