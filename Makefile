# cookiecutter-fastrtc: the template's own tasks. Without uv on PATH, the first target that
# needs it installs it into .tools/ with pip.
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
DEMO_DIR ?= build
BENCH_DIR ?= build/bench

.PHONY: help install test demo bench lint format lock clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

install: | $(UV) ## Install the template's own tools (cookiecutter, cruft, pytest, ruff) into .venv
	$(UV) sync --locked

test: install ## Run every test: bake the template, lint and test what it generates
	$(UV) run --locked pytest -m "not serial" --dist worksteal
	$(UV) run --locked pytest -m serial -n 0

demo: install ## Generate the default project into $(DEMO_DIR)/ and run it (http://127.0.0.1:7860/)
	rm -rf $(DEMO_DIR)/my-fastrtc-app
	$(UV) run --locked cookiecutter --no-input . -o $(DEMO_DIR)
	$(MAKE) -C $(DEMO_DIR)/my-fastrtc-app run UV=$(abspath $(UV))

bench: install ## Benchmark the generated app against plain fastrtc (~17 min): BENCHMARKS.md
	rm -rf $(BENCH_DIR)/my-fastrtc-app
	$(UV) run --locked cookiecutter --no-input . -o $(BENCH_DIR)
	$(MAKE) -C $(BENCH_DIR)/my-fastrtc-app install UV=$(abspath $(UV))
	cd $(BENCH_DIR)/my-fastrtc-app && $(abspath $(UV)) run --locked python $(CURDIR)/bench/run.py \
		--out $(CURDIR)/BENCHMARKS.md --raw $(abspath $(BENCH_DIR))/results.json $(ARGS)

lint: install ## ruff on the template's own code
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

format: install ## Format the template's code, and the generated project's through a bake
	$(UV) run --locked ruff format .
	$(UV) run --locked python scripts/format_template.py

lock: install ## Refresh the generated project's uv.lock (make lock ARGS=--upgrade)
	$(UV) run --locked python scripts/lock_template.py $(ARGS)

clean: ## Remove build/, .venv and .tools
	rm -rf $(DEMO_DIR) .venv .tools .pytest_cache .ruff_cache
