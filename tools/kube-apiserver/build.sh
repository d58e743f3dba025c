#!/usr/bin/env bash
# Builds the test kube-apiserver (k8s.io/kubernetes at the version in go.mod)
# once per machine: the binary is cached under $CACHE keyed by the sha256 of
# go.sum, and $OUT is linked to it. A warm run only checks the hash.
#   usage: build.sh OUT   (default: <repo>/bin/kube-apiserver)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/bin/kube-apiserver}
cache=${PODROUTER_CACHE:-/var/cache/podrouter}
version=v1.37.2 # keep equal to k8s.io/kubernetes in go.mod
hash=$(cat "$here/go.sum" "$here/go.mod" "$here/main.go" | sha256sum | cut -c1-16)
bin=$cache/kube-apiserver-$version-$hash

if [[ ! -x $bin ]]; then
	mkdir -p "$cache"
	echo "building kube-apiserver $version into $bin (cold: ~10 min on 2 cores)" >&2
	start=$SECONDS
	tmp=$bin.tmp.$$
	trap 'rm -f "$tmp"' EXIT
	(cd "$here" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" ${GO:-go} build -trimpath \
		-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version" \
		-o "$tmp" .)
	mv -f "$tmp" "$bin"
	echo "built kube-apiserver in $((SECONDS - start))s" >&2
fi
mkdir -p "$(dirname "$out")"
ln -sfn "$bin" "$out"
