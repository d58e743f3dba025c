#!/usr/bin/env bash
# Builds the Kubernetes components (k8s.io/kubernetes at the version in
# go.mod) as one multi-command binary, once per machine: it is cached under
# $CACHE keyed by the sha256 of go.mod, go.sum and main.go, and $OUTDIR/kube
# plus one symlink per component (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl) point at it. A warm run only
# checks the hash.
#   usage: build.sh [OUTDIR]   (default: <repo>/bin)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
outdir=${1:-$repo/bin}
cache=${PODROUTER_CACHE:-/var/cache/podrouter}
version=v1.37.2 # keep equal to k8s.io/kubernetes in go.mod
hash=$(cat "$here/go.sum" "$here/go.mod" "$here/main.go" | sha256sum | cut -c1-16)
bin=$cache/kube-$version-$hash

if [[ ! -x $bin ]]; then
	mkdir -p "$cache"
	echo "building Kubernetes $version components into $bin (cold: ~20 min on 2 cores)" >&2
	start=$SECONDS
	tmp=$bin.tmp.$$
	trap 'rm -f "$tmp"' EXIT
	(cd "$here" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" ${GO:-go} build -trimpath \
		-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37" \
		-o "$tmp" .)
	mv -f "$tmp" "$bin"
	echo "built the Kubernetes components in $((SECONDS - start))s" >&2
fi
mkdir -p "$outdir"
ln -sfn "$bin" "$outdir/kube"
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
	ln -sfn kube "$outdir/$c"
done
