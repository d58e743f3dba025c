# podrouter — see README.md. Every target is safe to run twice.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)
LAB ?= lab
TORS ?= 1
DATAPATH ?= true
BFD ?= false
KUBERNETES ?= false
PROXY_MODE ?= iptables
APT_PKGS := frr bird2 containernetworking-plugins iproute2 iputils-ping iptables nftables conntrack procps \
	clang llvm libbpf-dev bpftool iperf3 sockperf tcpdump prometheus etcd-server \
	dnsmasq-base bind9-dnsutils curl containerd runc podman docker.io time
STATICCHECK_VERSION ?= v0.8.2
GOVULNCHECK_VERSION ?= v1.9.0
# The Go vulnerability database as a module (golang.org/x/vulndb): bump to refresh.
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
FUZZTIME ?= 60s

.PHONY: all build lab-tool release image pause-image lab-image tools kube kube-apiserver deps lab lab-down lab-status converge test test-unit resilience lint vulncheck fuzz generate generate-check bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/podrouter ./cmd/podrouter

# The lab driver (cmd/podrouter-lab): a development tool, not shipped; it
# runs bin/podrouter in the lab's nodes.
lab-tool: build
	CGO_ENABLED=0 $(GO) build -o $(BIN)/podrouter-lab ./cmd/podrouter-lab

# What the container image ships (deploy/kubernetes/Dockerfile runs this):
# static, stripped, reproducible podrouter and gobgp binaries in $(RELEASE_DIR).
RELEASE_DIR ?= $(CURDIR)/out
VERSION ?= dev
release:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(RELEASE_DIR)/podrouter ./cmd/podrouter
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(RELEASE_DIR)/gobgp github.com/osrg/gobgp/v4/cmd/gobgp

# podrouter's container image, built offline (tools/image: no engine, no
# base image, no registry) into one archive that `ctr -n k8s.io images
# import`, `podman load` and `docker load` read. FROM scratch with the
# `make release` binaries, as the final stage of deploy/kubernetes/Dockerfile
# (tools/image/make_test.go checks they agree). Reproducible: the same
# sources give the same digest; every time stamp is SOURCE_DATE_EPOCH (the
# last commit's time). The manifest digest goes to <archive>.digest.
IMAGE ?= podrouter:latest
IMAGE_ARCHIVE ?= $(RELEASE_DIR)/podrouter-image.tar
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# $(call build-image,ARCHIVE,REF,FLAGS AND FILES): tools/image into ARCHIVE,
# the manifest digest into ARCHIVE.digest.
define build-image
	$(GO) run ./tools/image -o $(1) -ref $(2) -created $(SOURCE_DATE_EPOCH) $(3) >$(1).digest
	@echo "$(2) $$(cat $(1).digest) -> $(1)"
endef
image: release
	$(call build-image,$(IMAGE_ARCHIVE),$(IMAGE),-entrypoint /usr/local/bin/podrouter -env PATH=/usr/local/bin \
		$(RELEASE_DIR)/podrouter=/usr/local/bin/podrouter $(RELEASE_DIR)/gobgp=/usr/local/bin/gobgp)

# The pod sandbox image for the lab's containerd (sandbox_image): tools/pause,
# which sleeps and reaps orphans, FROM scratch, built like the image above.
PAUSE_IMAGE ?= localhost/podrouter/pause:1
PAUSE_ARCHIVE ?= $(RELEASE_DIR)/pause-image.tar
pause-image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(RELEASE_DIR)/pause ./tools/pause
	$(call build-image,$(PAUSE_ARCHIVE),$(PAUSE_IMAGE),-entrypoint /pause $(RELEASE_DIR)/pause=/pause)

# The lab's workload image (the Kubernetes lab's Deployments run it):
# podrouter-lab, whose `backend` serves HTTP and TCP/UDP echo, FROM scratch,
# built like the images above. Not a podrouter image.
LAB_IMAGE ?= localhost/podrouter/lab:1
LAB_ARCHIVE ?= $(RELEASE_DIR)/lab-image.tar
lab-image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(RELEASE_DIR)/podrouter-lab ./cmd/podrouter-lab
	$(call build-image,$(LAB_ARCHIVE),$(LAB_IMAGE),-entrypoint /usr/local/bin/podrouter-lab -env PATH=/usr/local/bin \
		$(RELEASE_DIR)/podrouter-lab=/usr/local/bin/podrouter-lab)

# The stock gobgp CLI at exactly the library's version (a go.mod tool).
tools:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/gobgp github.com/osrg/gobgp/v4/cmd/gobgp

# The real Kubernetes components for the tests and the Kubernetes lab
# (tools/kube, its own module; one multi-command binary: kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl):
# built once per machine, cached by the hash of its go.mod/go.sum/main.go
# under $(KUBE_CACHE), linked as bin/kube and one bin/<component> symlink each.
KUBE_CACHE ?= /var/cache/podrouter
kube:
	PODROUTER_CACHE=$(KUBE_CACHE) GO=$(GO) tools/kube/build.sh $(BIN)
# Old name, kept for scripts.
kube-apiserver: kube

# Debian packages and Go tools the project needs; idempotent.
deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(GO) mod download
	$(MAKE) tools

# The 3-node lab: FRR ToR(s), three podrouter nodes, two CNI pods each.
# deps first: on a fresh machine it installs FRR and the CNI plugins.
#   KUBERNETES=true: a Kubernetes cluster: the control plane in the ToR,
#   containerd + runc + kubelet + kube-proxy in every node, podrouter
#   installed with `kubectl apply -k deploy/lab` (the image from make image).
#   KUBERNETES=true KUBELETS=false: the control plane, podrouter in
#   Kubernetes mode and the lab pods as the lab's own processes,
#   kube-proxy (PROXY_MODE=iptables|nftables) and Services backed by the
#   pods.
KUBELETS ?= true
ifeq ($(KUBERNETES)/$(KUBELETS),true/true)
lab: deps lab-tool tools kube image pause-image lab-image
	$(BIN)/podrouter-lab up --name $(LAB) --kubernetes --kubelets --proxy-mode $(PROXY_MODE) \
		--images $(IMAGE_ARCHIVE),$(PAUSE_ARCHIVE),$(LAB_ARCHIVE) --overlay deploy/lab
else
lab: deps lab-tool tools $(if $(filter true,$(KUBERNETES)),kube)
	$(BIN)/podrouter-lab up --name $(LAB) --tors $(TORS) --datapath=$(DATAPATH) --bfd=$(BFD) \
		$(if $(filter true,$(KUBERNETES)),--kubernetes --proxy-mode $(PROXY_MODE))
endif

lab-status: lab-tool tools
	$(BIN)/podrouter-lab status --name $(LAB)

# Side by side: podrouter vs BIRD as the node's speaker, time from start to
# pod CIDR installed at the FRR ToR, interleaved rounds, plus RSS.
converge: lab-tool
	$(BIN)/podrouter-lab converge --runs $(or $(RUNS),10)

lab-down: lab-tool
	$(BIN)/podrouter-lab down --name $(LAB)

# All tiers: unit, in-process BGP, privileged netns/lab e2e (run as root).
# The resilience suite has its own target (CI runs it from .ci/run).
test: deps build tools kube
	$(GO) test -count=1 -p 1 -timeout 60m $$($(GO) list ./... | grep -v /resilience$$)

# The resilience and security suite (root; ~16 min CI-sized): one line per
# test, `name: figure … target …`, then the table. LONG=1: the long versions
# (30 min soak, 50 flaps, 10-minute fuzzing, 60 s SYN flood, 10 kill cycles).
resilience: build tools
	set -o pipefail; $(GO) test -count=1 -p 1 -timeout 90m -v ./resilience/ $(if $(LONG),-args -long) 2>&1 | \
		grep -E '^(RESILIENCE |== |ok |MISSED |--- FAIL|FAIL|PASS|panic)|^\s+\S+_test\.go:[0-9]+: '

test-unit:
	$(GO) test -count=1 -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_bpfel\.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# govulncheck on every package: called vulnerabilities fail unless
# .govulncheck-allow names them with a reason (tools/vulncheck.sh).
vulncheck:
	GO=$(GO) VULNDB_VERSION=$(VULNDB_VERSION) GOVULNCHECK_VERSION=$(GOVULNCHECK_VERSION) PODROUTER_CACHE=$(KUBE_CACHE) tools/vulncheck.sh

# Every fuzz target for FUZZTIME each (CI: 60s; a longer run: make fuzz FUZZTIME=10m).
# New interesting inputs stay in the Go cache; crashers land in testdata/fuzz.
FUZZ_TARGETS := ./config:FuzzParse ./bgp:FuzzLearnedPaths ./k8s:FuzzTranslate ./datapath:FuzzPrograms
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== fuzz $$fn ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1 | grep -v '^fuzz: elapsed: .*, gathering' | tail -n 4; \
		test $${PIPESTATUS[0]} -eq 0; done

generate:
	$(GO) generate ./datapath/

# CI: the committed BPF objects must be what the C sources build to.
generate-check: generate
	@git diff --exit-code --stat -- datapath/ || { echo "generated BPF objects differ from the committed ones: run make generate and commit"; exit 1; }

# Pod networking side by side in the lab (root; ~9 min): node<->node, kernel
# pod routing, kernel + legacy-CNI iptables/conntrack, podrouter's fast path,
# and a ClusterIP (kube-proxy) on the kernel path vs the fast path (the
# Kubernetes lab: bin/kube-*, bin/podrouter-lab for the pods' backend); then
# the BPF_PROG_RUN per-packet microbenchmarks.
bench: lab-tool kube
	$(GO) run ./cmd/podrouter-bench --podrouter $(BIN)/podrouter
	$(GO) test -run '^$$' -bench . -count 5 ./datapath/

clean:
	rm -rf $(BIN)
