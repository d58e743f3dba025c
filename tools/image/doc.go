// Command image builds a container image from static files with no
// container engine, no base image and no registry, and writes it as one
// tar archive that containerd (`ctr -n k8s.io images import`), podman
// (`podman load`) and docker (`docker load`) all load: an OCI image layout
// plus docker's manifest.json (see WriteArchive).
//
//	go run ./tools/image -o out/podrouter-image.tar -ref podrouter:latest \
//	    -entrypoint /usr/local/bin/podrouter \
//	    out/podrouter=/usr/local/bin/podrouter out/gobgp=/usr/local/bin/gobgp
//
// The image is FROM scratch: one layer holding the given files (parent
// directories implied, root-owned, 0755 or 0644). It is reproducible:
// the same files give the same digest and the same archive bytes, whatever
// the files' owners, times and paths on the build machine. Every time
// stamp is -created (Unix seconds), default $SOURCE_DATE_EPOCH, else 0.
// It prints the manifest digest.
//
// Why a library (go-containerregistry) and not buildah or docker: the
// build needs no root, no daemon, no storage driver and no network, runs
// wherever Go does, and is deterministic by construction (buildah and
// docker stamp the build time unless told otherwise, and need a
// Dockerfile without the builder stage's base image).
//
// Owns: the image build (go-containerregistry stays here).
//
// Imports (podrouter): none.
package main
