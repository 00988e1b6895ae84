# Dev and CI installs pin the torch build that lies on this machine's disk; setup.py keeps ranges for users.
PYTHON ?= python3
TORCH_PINS = torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= outputs/demo
# transformers' own common model tests: tests/ of the installed version's sdist, unpacked once here;
# tests/test_modeling_transformers_common.py runs them
TRANSFORMERS_TESTS = .cache/transformers-tests

# The oldest transformers setup.py supports, in a venv of its own that shares every other package of this
# environment (a .pth file adds this environment's site-packages after the venv's own); `make test` runs a fast
# subset of the suite on it.
OLDEST_TRANSFORMERS = $(shell sed -n 's/.*"transformers>=\([0-9.]*\),.*/\1/p' setup.py)
OLDEST_VENV = .cache/venv-transformers-$(OLDEST_TRANSFORMERS)
OLDEST_PYTHON = $(OLDEST_VENV)/bin/python
# model tests (ours and transformers' common ones), the private Trainer parts, one pretraining, one fine-tuning,
# the resume tests, and loading a saved checkpoint with trust_remote_code=True in a process without this package
OLDEST_SUBSET = tests/test_modeling.py tests/test_configuration.py tests/test_modeling_transformers_common.py \
	tests/test_trainer_compat.py tests/test_run_pretraining.py::test_stock_encoder_initializes_the_a2mim_encoder \
	tests/test_run_finetuning.py::test_plain_finetune_from_scratch \
	tests/test_run_faults.py::test_a_resumed_run_logs_the_losses_of_the_uninterrupted_run \
	tests/test_run_faults.py::test_a_finished_run_stays_finished_and_a_run_killed_before_its_final_save_only_finishes

.PHONY: install transformers-tests test test-oldest-transformers demo clean

install:
	$(PYTHON) -m pip install -q --disable-pip-version-check $(TORCH_PINS) -e ".[test]"

# Unpacks the sdist tests of the transformers that the python $(1) imports (a failed download, e.g. without a
# registry, only warns: the common-test file then skips with its reason).
define fetch_transformers_tests
	@version=$$($(1) -c "import transformers; print(transformers.__version__)"); \
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
endef

transformers-tests: install
	$(call fetch_transformers_tests,$(PYTHON))

$(OLDEST_PYTHON): setup.py
	rm -rf $(OLDEST_VENV) && $(PYTHON) -m venv $(OLDEST_VENV)
	$(PYTHON) -c "import sysconfig; paths = sysconfig.get_paths(); \
		print('import site; ' + '; '.join(f'site.addsitedir({paths[key]!r})' for key in ('purelib', 'platlib')))" \
		> $$($(OLDEST_PYTHON) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/parent-environment.pth
	$(OLDEST_PYTHON) -m pip install -q --disable-pip-version-check transformers==$(OLDEST_TRANSFORMERS)

test-oldest-transformers: install $(OLDEST_PYTHON)
	$(call fetch_transformers_tests,$(OLDEST_PYTHON))
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(OLDEST_PYTHON) -m pytest -n 2 -p no:cacheprovider $(OLDEST_SUBSET)

# The full suite also loads its saved checkpoints' remote code with the oldest supported transformers.
test: transformers-tests $(OLDEST_PYTHON)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 A2MIM_OLDEST_PYTHON=$(abspath $(OLDEST_PYTHON)) $(PYTHON) -m pytest -n 2 \
		--durations=15 tests
	$(MAKE) --no-print-directory test-oldest-transformers

demo: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PYTHON) run_pretraining.py --output_dir $(DEMO_DIR) \
		--model_preset vit-micro --max_steps 1000 --per_device_train_batch_size 64 \
		--save_steps 500 --logging_steps 50 --use_cpu
	@echo "Demo done: checkpoint, model card and reconstructions.png in $(DEMO_DIR)"

clean:
	rm -rf outputs .pytest_cache $(TRANSFORMERS_TESTS) $(OLDEST_VENV)
