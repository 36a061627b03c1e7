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

.PHONY: book book-tiny test venv clean

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

clean:
	rm -rf _build book/generated results
