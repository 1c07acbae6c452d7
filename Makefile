# csm: the Swift package manager is the build; this file adds the Debian system packages
# and the three everyday entry points. Works on a fresh Debian 12 machine.

SWIFT      ?= swift
BUILD_FLAGS = -c release
CSM         = .build/release/csm
PACKAGES    = libopenblas-dev libdnnl-dev libhdf5-dev libpng-dev libjpeg-dev zlib1g-dev dataset-fashion-mnist
SUDO        = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build install test test-slurm test-dependency test-distributed python-package study-tools cli-help demo bench study fuzz clean

all: build

## deps: install the missing system libraries with apt (OpenBLAS, oneDNN, HDF5, libpng, libjpeg).
deps:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

## build: the csm command, optimised.
build: deps
	$(SWIFT) build $(BUILD_FLAGS) --product csm

## install: the csm binary in PREFIX/bin and the default models in PREFIX/share/csm/Datasets
## (csm finds them relative to its executable), so that csm runs from any directory
## without the checkout. PREFIX defaults to /usr/local.
PREFIX ?= /usr/local
install: build
	install -d $(PREFIX)/bin $(PREFIX)/share/csm/Datasets/fashion-mnist
	install -m 755 $(CSM) $(PREFIX)/bin/csm
	install -m 644 Datasets/fashion-mnist/README.md Datasets/fashion-mnist/fashion-mnist-edm-vp32.safetensors \
	  Datasets/fashion-mnist/fashion-mnist-resnet20.safetensors Datasets/fashion-mnist/fashion-mnist-resnet20.prototypes.safetensors \
	  $(PREFIX)/share/csm/Datasets/fashion-mnist/
	@echo "installed $(PREFIX)/bin/csm and its default models in $(PREFIX)/share/csm/Datasets"

## test: every test, optimised build (numeric code is too slow unoptimised), then the
## Python package's tests and the study driver's, then the Slurm test (a few minutes). The csm_shards package
## (python/, with h5py and numpy), pytest and Pillow (the study's figures) are installed with pip
## first: the Swift tests also check that it reads csm's shards as the Swift loader does.
## PyTorch is optional.
test: deps python-package study-tools
	$(SWIFT) build $(BUILD_FLAGS) --build-tests
	$(SWIFT) test $(BUILD_FLAGS) --skip-build
	python3 -m pytest -q -p no:cacheprovider python/tests tools/study/test_study.py tools/study/test_study_diagnostics.py
	tools/packaging/test_dependency.sh $(CSM)
	$(SUDO) tools/slurm/test_slurm.sh

## test-slurm: the Slurm array script examples/slurm/generate.sh (shown in docs/guide/scale-out.md,
## whose copy must equal it) on a private single-node Slurm cluster (root; installs slurm-wlm
## and munge with apt when missing): merged parts equal one csm generate byte for byte, also
## after a task is cancelled mid-shard and resubmitted. Part of make test (docs/guide/testing.md).
test-slurm: build
	$(SUDO) tools/slurm/test_slurm.sh

## test-dependency: examples/swift-loader, a program of another package that reads shards with
## CSMLoader, built against this checkout by path and against a tagged git copy by version
## (SwiftPM refuses unsafeFlags there), on shards csm generate writes. Part of make test.
test-dependency: build
	tools/packaging/test_dependency.sh $(CSM)

## test-distributed: CSMDataset and PairedCSMDataset under torchrun with 2 processes (gloo,
## CPU) and DistributedSampler (installs PyTorch with pip when missing).
test-distributed: python-package
	@python3 -c "import torch" 2>/dev/null || python3 -m pip install -q torch
	python3 -m pytest -q -p no:cacheprovider python/tests/test_distributed.py

## python-package: installs the Python reader (python/, as csm_shards) and pytest with pip;
## the tests, the tools/ scripts and examples/pytorch/train.py import the installed package.
python-package:
	python3 -m pip install -q ./python pytest

## study-tools: Pillow, which the study's figures (tools/study/study_figures.py) draw with.
study-tools:
	@python3 -c "import PIL" 2>/dev/null || python3 -m pip install -q pillow

## cli-help: every command's --help saved as text in docs/cli/ (tools/docs/cli_help.py, 100 columns
## wide); the CLIHelpTests test fails when they differ from what csm prints.
cli-help: build
	python3 tools/docs/cli_help.py --csm $(CSM) --out docs/cli

## demo: class-mixed trajectories as a PNG, then a CSM dataset with the defaults (720 images).
demo: build
	@mkdir -p demo-out
	$(CSM) sample --seeds 0-7 --trajectory Sneaker:"Ankle boot" --lambdas 8 --grid demo-out/trajectories.png
	@echo "wrote demo-out/trajectories.png (rows: seeds 0-7; columns: λ = 0 … 1 on Sneaker)"
	$(CSM) generate --out demo-out/data
	$(CSM) inspect demo-out/data --verify --grid demo-out/grid.png --plot demo-out/plot.png
	@echo "shards and manifest: demo-out/data/; pictures: demo-out/trajectories.png, demo-out/grid.png, demo-out/plot.png"

## bench: csm against PyTorch in the same run — sampling, the loader on the demo shards,
## training a ResNet-20 on Fashion-MNIST, then the CSM paper's 56 M-parameter network
## (random weights, made in bench-out/ by tools/bench/make_paper_model.py). Installs PyTorch with pip.
bench: build python-package
	@python3 -c "import torch, safetensors" 2>/dev/null || python3 -m pip install -q torch safetensors
	$(CSM) generate --out demo-out/data
	@[ -e demo-out/real-train/manifest.json ] || $(CSM) import fashion-mnist --split train --out demo-out/real-train
	python3 tools/bench/bench.py --csm $(CSM)

## study: the calibration study on Fashion-MNIST (tools/study/study.py): data, CSM settings chosen
## on the validation split, ResNet-20 trained to convergence with every method in the
## "scarce", "full" and "middle" regimes, evaluated on the test split. About 40 core-hours;
## rerun to resume (finished runs are recorded in Datasets/fashion-mnist/study/runs.json,
## meant to be committed; STUDY_FLAGS=--commit commits each as it finishes). Writes
## docs/calibration/fashion-mnist.{md,json}, its figures and the README's outcome.
## Not part of make test. STUDY_FLAGS=--quick checks the pipeline in minutes.
study: build python-package study-tools
	python3 tools/study/study.py --csm $(CSM) $(STUDY_FLAGS)

## fuzz: libFuzzer harnesses (safetensors, .npy, IDX, manifest JSON, shards) built with
## -sanitize=fuzzer,address in their own package (Fuzz/, never part of build or test), each
## run FUZZ_SECONDS from the committed seed corpus, FUZZ_PARALLEL at a time; prints
## executions, exec/s, coverage and crashes per harness (Fuzz/README.md). Not in CI.
FUZZ_SECONDS   ?= 300
FUZZ_PARALLEL  ?= 1
FUZZ_HARNESSES ?= FuzzSafeTensors FuzzNumPy FuzzIDX FuzzManifest FuzzShard
FUZZ_BUILD      = $(SWIFT) build -c release --package-path Fuzz --scratch-path .build-fuzz \
                  -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld
fuzz: deps
	@for h in $(FUZZ_HARNESSES); do $(FUZZ_BUILD) --product $$h || exit 1; done
	python3 Fuzz/run_fuzz.py --seconds $(FUZZ_SECONDS) --parallel $(FUZZ_PARALLEL) $(FUZZ_HARNESSES)

clean:
	rm -rf .build .build-fuzz demo-out bench-out python/build python/*.egg-info
