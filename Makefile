# csm: the Swift package manager is the build; this file adds the Debian system packages
# and the three everyday entry points. Works on a fresh Debian 12 machine.

SWIFT      ?= swift
BUILD_FLAGS = -c release
CSM         = .build/release/csm
PACKAGES    = libopenblas-dev libhdf5-dev libpng-dev libjpeg-dev zlib1g-dev dataset-fashion-mnist
SUDO        = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test demo bench fuzz clean

all: build

## deps: install the missing system libraries with apt (OpenBLAS, HDF5, libpng, libjpeg).
deps:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

## build: the csm command, optimised.
build: deps
	$(SWIFT) build $(BUILD_FLAGS) --product csm

## test: every test, optimised build (numeric code is too slow unoptimised), then the
## Python reader's tests. h5py, numpy and pytest come from pip first: the Swift tests also
## check that h5py reads csm's shards and agrees with the Swift loader. PyTorch is optional.
test: deps
	@python3 -c "import h5py, numpy, pytest" 2>/dev/null || python3 -m pip install -q h5py numpy pytest
	$(SWIFT) build $(BUILD_FLAGS) --build-tests
	$(SWIFT) test $(BUILD_FLAGS) --skip-build
	python3 -m pytest -q -p no:cacheprovider tools/tests

## demo: class-mixed trajectories as a PNG, then a CSM dataset with the defaults (720 images).
demo: build
	@mkdir -p demo-out
	$(CSM) sample --seeds 0-7 --trajectory Sneaker:"Ankle boot" --lambdas 8 --grid demo-out/trajectories.png
	@echo "wrote demo-out/trajectories.png (rows: seeds 0-7; columns: λ = 0 … 1 on Sneaker)"
	$(CSM) generate --out demo-out/data
	$(CSM) inspect demo-out/data --verify --grid demo-out/grid.png --plot demo-out/plot.png
	@echo "shards and manifest: demo-out/data/; pictures: demo-out/trajectories.png, demo-out/grid.png, demo-out/plot.png"

## bench: csm against PyTorch in the same run — sampling, then the loader on the demo
## shards (installs PyTorch with pip).
bench: build
	@python3 -c "import torch, safetensors, h5py" 2>/dev/null || python3 -m pip install -q torch safetensors numpy h5py
	$(CSM) generate --out demo-out/data
	python3 tools/bench.py --csm $(CSM)

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
	rm -rf .build .build-fuzz demo-out bench-out
