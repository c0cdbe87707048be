# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# These torch/torchvision builds are the ones this project is tested with.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install run test lint format bench bench-gpu loadtest clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	scripts/run.sh

test: lint
	scripts/ensure-redis.sh
	scripts/install-browser.sh
	$(PY) -m pytest -q

# Style, the import contracts (pyproject.toml [tool.importlinter]) and types (mypy).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Throughput, latency, retrieval scaling and memory with a ViT-B/32-sized model (several minutes).
bench: install
	scripts/ensure-redis.sh
	$(PY) -m bench.run_all

# The GPU path on one NVIDIA GPU (under 8 minutes); without one, a reduced run on the CPU.
bench-gpu: install
	$(PY) -m bench.gpu

# Against a running service (`make run` in another terminal): 2,000 requests at concurrency 32.
loadtest: install
	$(PY) bench/loadtest.py --url $${CLIPQ_URL:-http://127.0.0.1:8080} --requests 2000 --concurrency 32

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
