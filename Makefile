# Set-up is part of every target: the virtual environment is created and
# filled from requirements.txt the first time (and again when it changes).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench

$(STAMP): requirements.txt requirements-device.txt requirements-tff.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-tff.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m device_sim demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_model.py
