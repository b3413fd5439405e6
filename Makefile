# densekit: the two commands a newcomer needs.
#   make demo   build .venv if missing, generate the synthetic shapes set,
#               train YOLOv8-n briefly (DEMO_MODELS adds others), evaluate
#               it, run the image demo and print a verdict
#   make test   build .venv if missing, run the default test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.densekit-env-ok
PYTEST_ARGS ?=

.PHONY: demo demo-anomaly test test-slow lint env ext clean-env learning-benchmark

$(STAMP): setup.py tools/setup_env.sh requirements/build.txt requirements/runtime.txt requirements/tests.txt requirements/deploy.txt
	rm -f $(STAMP)
	bash tools/setup_env.sh $(VENV)

env: $(STAMP)

# densekit's C++ ops (densekit/_ext*.so), rebuilt in place when a source
# under densekit/ops/csrc/ changed (a no-op otherwise)
ext: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

demo: ext
	PYTHON=$(PY) bash tools/run_demo.sh

# EfficientAD-S on the synthetic anomaly set: train briefly, evaluate, demo
demo-anomaly: ext
	PYTHON=$(PY) bash tools/run_demo_anomaly.sh

test: ext
	$(PY) -m pytest tests -m "not slow" --durations=20 $(PYTEST_ARGS)

# learning checks (minutes each); .ci/run runs them after `make test`
test-slow: ext
	$(PY) -m pytest tests -m slow $(PYTEST_ARGS)

# the README's learning figure: YOLOv8-n on synthetic shapes, <= 15 min
learning-benchmark: ext
	$(PY) tools/analysis/learning_benchmark.py

# OpenMMLab's style: flake8 rules through ruff (ruff.toml), isort's order
# with OpenMMLab's settings (.isort.cfg)
lint: $(STAMP)
	$(VENV)/bin/ruff check densekit tools demo tests configs
	$(VENV)/bin/isort --check-only --diff densekit tools demo tests

clean-env:
	rm -rf $(VENV)
