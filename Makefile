# winclip — one-command set-up, tests, demo and report.
# `make setup` is idempotent: it reinstalls only when requirements.lock or pyproject.toml change.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUILD := build
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-browser lint lab notebooks demo demo-predict bench bench-grid gpu-wheels reproduce clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check pip==26.3
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests

# Pages in a real browser, headless Chromium (installed with apt-get when absent): the inspection page of
# `winclip predict` on the tiny model's demo (every image must load; build/browser-check/screenshot.png), and the
# notebooks' HTML report of the tiny demo with the network off (every formula typeset as MathML, no raw TeX, nothing
# fetched; build/browser-check-report/report_01_cpe.png).
test-browser: setup
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(PY) -m tests.browser.check_inspection_report --out $(BUILD)/browser-check
	$(PY) -m tests.browser.check_html_report --out $(BUILD)/browser-check-report

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# JupyterLab on notebooks/ with the project's kernel (offline; edits to a notebook also update its paired .py)
lab: setup
	cd notebooks && ../$(VENV)/bin/jupyter lab --ServerApp.open_browser=False

# After editing a notebook's .py source (or its .ipynb in Jupyter without jupytext): sync the pair.
notebooks: setup
	$(VENV)/bin/jupytext --sync notebooks/[0-9][0-9]_*.py

demo: setup
	$(PY) -m tools.demo

# `winclip predict` on a folder of synthetic photos: build/demo-predict/predictions/report.html
demo-predict: setup
	$(PY) -m tools.predict_demo

bench: setup
	$(PY) -m benchmarks.bench_speed --out $(BUILD)/bench/speed_cpu.json

# The grid as a user runs it (`winclip run` on an MVTec-size synthetic set), stage by stage: on the CPU the tiny model
# and a tenth of the images; SCALE, DEVICE, MODEL and BASELINE=<another checkout, run side by side> optional, e.g.
# `git worktree add /tmp/base cb34c84 && make bench-grid BASELINE=/tmp/base`.
bench-grid: setup
	$(PY) -m benchmarks.bench_grid $(if $(SCALE),--scale $(SCALE)) $(if $(DEVICE),--device $(DEVICE)) \
		$(if $(MODEL),--model $(MODEL)) $(if $(BASELINE),--baseline $(BASELINE)) $(BENCH_GRID_ARGS)

# Wheels that the lent GPU machine lacks, for benchmarks/gpu_check.sh (see its header); .whl/ is git-ignored.
gpu-wheels:
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
		open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==$$(grep '^wcwidth==' requirements.lock | cut -d= -f3) zlib-ng==1.1.0

# make reproduce MVTEC=/data/mvtec VISA=/data/visa MPDD=/data/mpdd  (any subset; PRECISION, DEVICE, RESULTS, CACHE
# optional): the full grid with the paper's weights, then notebooks 01-06 (the report, the presets and the paper's
# ablations, scored from the same feature cache) into figures/, and the one-page HTML report report/index.html.
# The later benchmarks and your own folders, as `winclip run` names them: BTAD= KSDD= KSDD2= DAGM= DTD= LOCO= MVTEC2=
# REALIAD= FOLDER= (roots; any subset, with or without the three above): their grid runs apart, into
# RESULTS/benchmarks, and notebook 08 puts every dataset given beside the published numbers.
# PRETRAINED=/path/to/checkpoint (or a tag, or none) is the checkpoint of the grid and the notebooks (default:
# $WINCLIP_PRETRAINED when set, else laion400m_e31 from the cache); MODEL=<open_clip name> changes the model (a
# demo: MODEL=WinCLIP-Tiny-240). Offline machines: data_prep/README.md, 'Offline: the weights and the data'.
reproduce: PRECISION ?= auto
reproduce: DEVICE ?= auto
reproduce: RESULTS ?= $(BUILD)/results
reproduce: CACHE ?= .cache/winclip/features
reproduce: PAPER_ARGS = $(if $(MVTEC),--mvtec $(abspath $(MVTEC))) $(if $(VISA),--visa $(abspath $(VISA))) \
	$(if $(MPDD),--mpdd $(abspath $(MPDD)))
reproduce: MORE_ARGS = $(if $(BTAD),--btad $(abspath $(BTAD))) $(if $(KSDD),--ksdd $(abspath $(KSDD))) \
	$(if $(KSDD2),--ksdd2 $(abspath $(KSDD2))) $(if $(DAGM),--dagm $(abspath $(DAGM))) \
	$(if $(DTD),--dtd $(abspath $(DTD))) $(if $(LOCO),--loco $(abspath $(LOCO))) \
	$(if $(MVTEC2),--mvtec2 $(abspath $(MVTEC2))) $(if $(REALIAD),--realiad $(abspath $(REALIAD))) \
	$(if $(FOLDER),--folder $(abspath $(FOLDER)))
reproduce: DATA_ARGS = $(strip $(PAPER_ARGS) $(MORE_ARGS))
reproduce: NOTEBOOKS = $(if $(strip $(PAPER_ARGS)),01_cpe 02_zero_shot_winclip 03_winclip_plus 04_heatmaps 05_report \
	06_ablations) 08_benchmarks
reproduce: CHECKPOINT = $(if $(wildcard $(PRETRAINED)),$(abspath $(PRETRAINED)),$(PRETRAINED))
reproduce: GRID = $(PY) -m winclip_lib.cli run --precision $(PRECISION) --device $(DEVICE) \
	$(if $(MODEL),--model '$(MODEL)') $(if $(PRETRAINED),--pretrained '$(CHECKPOINT)') --cache-dir $(abspath $(CACHE))
reproduce: export WINCLIP_ENTRY_POINT := make
reproduce: setup
	@test -n "$(DATA_ARGS)" || { echo "usage: make reproduce MVTEC=/path/to/mvtec VISA=/path/to/visa MPDD=/path/to/mpdd [BTAD=... KSDD=... KSDD2=... DAGM=... DTD=... LOCO=... MVTEC2=... REALIAD=... FOLDER=...] [PRETRAINED=/path/to/checkpoint]"; exit 2; }
	$(if $(strip $(PAPER_ARGS)),$(GRID) $(PAPER_ARGS) --out $(abspath $(RESULTS)))
	$(if $(strip $(MORE_ARGS)),$(GRID) $(MORE_ARGS) --out $(abspath $(RESULTS))/benchmarks)
	$(PY) -m tools.notebooks $(DATA_ARGS) --results-dir $(abspath $(RESULTS)) --figures-dir $(abspath figures) \
		-p precision=$(PRECISION) -p device=$(DEVICE) -p cache_dir=$(abspath $(CACHE)) --out $(BUILD)/notebooks \
		$(if $(MODEL),-p 'model_name=$(MODEL)') $(if $(PRETRAINED),-p 'pretrained=$(CHECKPOINT)') $(NOTEBOOKS)
	$(PY) -m tools.html_report $(foreach n,$(NOTEBOOKS),$(BUILD)/notebooks/$(n).ipynb) --out report/index.html

clean:
	rm -rf $(BUILD)
