# Everything a fresh machine needs: only Python 3.11+ must exist beforehand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup setup-ray setup-lowbit lowbit-bench lowbit-arithmetic test test-slow test-clients test-ray test-torch-suite demo bench lint \
        format clean readme-check startup-bench test-torch-versions

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned exactly: an unpinned torch pulls a multi-GB CUDA build. pip runs quiet (its
# own output is hundreds of lines), so each step says what it installs; then the native
# kernels are built once, here, rather than silently inside the first run.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "setup 1/4: upgrading pip in $(VENV)"
	$(BIN)/pip install -q --upgrade pip
	@echo "setup 2/4: installing torch==2.13.0, CPU build (~200 MB; the longest step)"
	$(BIN)/pip install -q torch==2.13.0
	@echo "setup 3/4: installing nnopt (editable) with numpy, scikit-learn, matplotlib, pillow," \
	      "pydantic, rich, mnist1d, tomli-w, pytest, ruff, mypy"
	$(BIN)/pip install -q torch==2.13.0 -e '.[dev]'
	@echo "setup 4/4: building nnopt's native CPU kernels (C++, seconds)"
	-$(BIN)/python -m nnopt.optim.kernels
	touch $@

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -m 'not slow'

# Real processes and signals (torchrun ranks, kills): minutes, so CI runs them apart.
test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# nnopt vs torch.optim inside Lightning, transformers, accelerate, timm, peft, torch.compile
# and torch.distributed (tests/clients, left out of `make test`; ~5-10 min on 2 cores).
# timm goes in without its torchvision dependency (see the clients extra in pyproject.toml).
TIMM := timm==1.0.31
CLIENTS_STAMP := $(VENV)/.clients-installed

$(CLIENTS_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -q torch==2.13.0 -e '.[dev,clients]'
	$(BIN)/pip install -q --no-deps torch==2.13.0 $(TIMM)
	touch $@

# `nnopt compare --executor ray` (the `ray` extra) and its tests (tests/ray, left out of `make
# test`: each starts a local Ray cluster, ~1-2 min on 2 cores).
RAY_STAMP := $(VENV)/.ray-installed

$(RAY_STAMP): pyproject.toml $(STAMP)
	@echo "setup-ray: installing nnopt[ray] (ray==2.60.0) beside torch==2.13.0"
	$(BIN)/pip install -q torch==2.13.0 -e '.[dev,ray]'
	touch $@

setup-ray: $(RAY_STAMP)

# The 8-bit optimizers of bitsandbytes and torchao (the `lowbit` extra) that
# benchmarks/lowbit_step.py times beside nnopt's state_dtype / param_update options.
LOWBIT_STAMP := $(VENV)/.lowbit-installed

$(LOWBIT_STAMP): pyproject.toml $(STAMP)
	@echo "setup-lowbit: installing nnopt[lowbit] (bitsandbytes==0.50.2, torchao==0.18.0) beside torch==2.13.0"
	$(BIN)/pip install -q torch==2.13.0 -e '.[dev,lowbit]'
	touch $@

setup-lowbit: $(LOWBIT_STAMP)

lowbit-bench: $(LOWBIT_STAMP)
	$(BIN)/python benchmarks/lowbit_step.py

# The compact kernel's arithmetic against the float32 one's, arrays in L2, L3 and memory (no
# Python, no other package; the flags of kernels/build.py).
lowbit-arithmetic:
	$${CXX:-c++} -O3 -std=c++17 -fno-math-errno -fno-trapping-math -ffp-contract=off -pthread \
		-march=native -Isrc/nnopt/optim/kernels benchmarks/compact_arithmetic.cpp \
		-o $${TMPDIR:-/tmp}/nnopt_compact_arithmetic
	$${TMPDIR:-/tmp}/nnopt_compact_arithmetic

test-ray: $(RAY_STAMP)
	$(BIN)/python -m pytest -q tests/ray

# PyTorch's optimizer test properties in every layout x kernel mode (make test runs two modes).
test-torch-suite: setup
	NNOPT_SUITE_KERNELS=all $(BIN)/python -m pytest -q tests/torch_suite

test-clients: $(CLIENTS_STAMP)
	$(BIN)/python -m pytest -q tests/clients

# The optimizer tests on each torch nnopt claims: the lowest it supports (pyproject.toml's
# lower bound) and the newest the package index serves. One venv per version, .venv-torch-X/
# (gitignored, kept for the next run). Not in CI: PyPI's Linux wheels are the CUDA builds,
# several GB each with their nvidia-* dependencies (they run on CPU). Override with
# `make test-torch-versions TORCH_VERSIONS="2.6.0 2.14.1"`.
TORCH_VERSIONS ?= 2.4.0 2.14.1
TORCH_VERSION_TESTS := tests/test_dropin.py tests/test_optim_vs_torch.py tests/test_torch_signature.py \
                       tests/test_group_kernel.py tests/torch_suite

# torch pinned on every pip line, nnopt's too (its own requirement would otherwise let pip move
# torch). The kernels are plain C++ without torch's headers, so they build the same under any
# torch; a failed build is reported, and the tests then run the eager rules.
.venv-torch-%/.installed: pyproject.toml
	@echo "test-torch-versions: installing torch==$* and nnopt into .venv-torch-$*"
	$(PYTHON) -m venv .venv-torch-$*
	.venv-torch-$*/bin/pip install -q --upgrade pip
	.venv-torch-$*/bin/pip install -q torch==$* -e '.[dev]'
	-.venv-torch-$*/bin/python -m nnopt.optim.kernels
	touch $@

# Every version runs, even after a failure; the summary ends with each version's pytest line.
test-torch-versions: $(foreach v,$(TORCH_VERSIONS),.venv-torch-$(v)/.installed)
	@status=0; for v in $(TORCH_VERSIONS); do \
	    echo "== torch $$v"; \
	    { .venv-torch-$$v/bin/python -m pytest -q $(TORCH_VERSION_TESTS); \
	      echo $$? > .venv-torch-$$v/pytest.rc; } 2>&1 | tee .venv-torch-$$v/pytest.log; \
	    [ "$$(cat .venv-torch-$$v/pytest.rc)" = 0 ] || status=1; \
	done; \
	for v in $(TORCH_VERSIONS); do \
	    echo "torch $$v: $$(tail -n 1 .venv-torch-$$v/pytest.log)"; \
	done; exit $$status

# The seed's optimizers compared on MNIST-1D with the paper's CNN, 3 seeds (~2-3 min, 2 cores).
DEMO_RECIPES := examples/demo/sgd.toml examples/demo/momentum.toml \
                examples/demo/rmsprop.toml examples/demo/adam.toml

demo: setup
	rm -rf runs/demo
	$(BIN)/nnopt compare $(DEMO_RECIPES) --seeds 3 --jobs 2 --out runs/demo

bench: setup
	$(BIN)/python benchmarks/optimizer_step.py

# `nnopt --help` and `nnopt datasets` against `python -c "import torch"`, side by side.
startup-bench: setup
	$(BIN)/python benchmarks/startup.py

# Every shell command of README.md, in order, in a fresh clone of this repository's HEAD, and
# the numbers it prints against the README's (~15-20 min on 2 cores: it runs the demo, the
# test suite and the comparisons a new user runs). Needs only python3 and git.
# README_SKIP="make test" leaves out commands starting with that (CI has just run it).
README_SKIP ?=
readme-check:
	$(PYTHON) tests/readme_commands.py --repo . --clone /tmp/nnopt-readme-clone \
	    $(if $(README_SKIP),--skip "$(README_SKIP)")

lint: setup
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

clean:
	rm -rf $(VENV) .venv-torch-* build *.egg-info src/*.egg-info .pytest_cache
