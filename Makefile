# Dev and CI installs pin the torch build that lies on this machine's disk; setup.py keeps ranges for users.
PYTHON ?= python3
TORCH_PINS = torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= outputs/demo
# transformers' own common model tests: tests/ of the installed version's sdist, unpacked once here;
# tests/test_modeling_transformers_common.py runs them
TRANSFORMERS_TESTS = .cache/transformers-tests

.PHONY: install transformers-tests test demo clean

install:
	$(PYTHON) -m pip install -q --disable-pip-version-check $(TORCH_PINS) -e ".[test]"

# A failed download (no registry) only warns: the common-test file then skips with its reason.
transformers-tests: install
	@version=$$($(PYTHON) -c "import transformers; print(transformers.__version__)"); \
	target=$(TRANSFORMERS_TESTS)/$$version; \
	if [ ! -f $$target/transformers_tests/test_modeling_common.py ]; then \
		( mkdir -p $$target && \
		$(PYTHON) -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps --dest $$target \
			transformers==$$version && \
		tar xzf $$target/transformers-$$version.tar.gz -C $$target transformers-$$version/tests && \
		rm -rf $$target/transformers_tests && mv $$target/transformers-$$version/tests $$target/transformers_tests && \
		rm -rf $$target/transformers-$$version $$target/transformers-$$version.tar.gz ) || \
		{ rm -rf $$target; echo "warning: could not fetch transformers $$version's sdist tests; their tests will skip"; }; \
	fi

test: transformers-tests
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PYTHON) -m pytest -n 2 --durations=15 tests

demo: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PYTHON) run_pretraining.py --output_dir $(DEMO_DIR) \
		--model_preset vit-micro --max_steps 1000 --per_device_train_batch_size 64 \
		--save_steps 500 --logging_steps 50 --use_cpu
	@echo "Demo done: checkpoint, model card and reconstructions.png in $(DEMO_DIR)"

clean:
	rm -rf outputs .pytest_cache $(TRANSFORMERS_TESTS)
