package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec is an image: one layer of files on nothing (FROM scratch).
type Spec struct {
	// Ref names the image: "podrouter:latest", "example.org/x/pause:1".
	Ref string
	// Files go into the one layer; parent directories are implied.
	Files []File
	// Entrypoint is the image's ENTRYPOINT (exec form), Cmd its CMD.
	Entrypoint []string
	Cmd        []string
	// Env is the image's environment ("PATH=/usr/local/bin").
	Env []string
	// Labels are the image config's labels.
	Labels map[string]string
	// Created stamps the config, the history and every layer entry.
	Created time.Time
	// Arch is the GOARCH the files are built for (OS is always linux).
	Arch string
}

// Build assembles the image described by s: an OCI manifest and config,
// one gzip-compressed OCI layer.
func Build(s Spec) (v1.Image, error) {
	if len(s.Files) == 0 {
		return nil, fmt.Errorf("an image needs at least one file")
	}
	es, err := layerEntries(s.Files)
	if err != nil {
		return nil, err
	}
	for _, f := range s.Files {
		if err := checkExecutable(f.Src, s.Arch); err != nil {
			return nil, err
		}
	}
	created := s.Created.UTC()
	// The opener streams the tar from the source files each time the
	// library reads the layer; it compresses once and keeps the result.
	opener := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeLayer(pw, es, created)) }()
		return pr, nil
	}
	layer, err := tarball.LayerFromOpener(opener, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	var copies []string
	for _, f := range s.Files {
		copies = append(copies, f.Dst)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   v1.Time{Time: created},
		CreatedBy: "podrouter tools/image: COPY " + strings.Join(copies, " "),
		Comment:   "FROM scratch",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = s.Arch, "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{Entrypoint: s.Entrypoint, Cmd: s.Cmd, Env: s.Env, Labels: s.Labels}
	return mutate.ConfigFile(img, cf)
}

// names are the forms of an image reference each tool reads.
type names struct {
	full     string // containerd: "docker.io/library/podrouter:latest"
	familiar string // docker's RepoTags: "podrouter:latest"
	tag      string // OCI ref.name: "latest"
}

func parseRef(ref string) (names, error) {
	var opts []name.Option
	if rest, ok := strings.CutPrefix(ref, "localhost/"); ok {
		// A registry host, as for docker and containerd; the library
		// would read it as a repository on the default registry.
		ref, opts = rest, []name.Option{name.WithDefaultRegistry("localhost")}
	}
	t, err := name.NewTag(ref, opts...)
	if err != nil || !strings.HasSuffix(ref, ":"+t.TagStr()) {
		return names{}, fmt.Errorf("image reference %q: want [REGISTRY/]REPOSITORY:TAG, the tag spelled out", ref)
	}
	reg, repo := t.RegistryStr(), t.RepositoryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	n := names{full: reg + "/" + repo + ":" + t.TagStr(), tag: t.TagStr()}
	n.familiar = n.full
	if reg == "docker.io" {
		n.familiar = strings.TrimPrefix(repo, "library/") + ":" + t.TagStr()
	}
	return n, nil
}

// ociLayout is the image layout's version file.
const ociLayout = `{"imageLayoutVersion":"1.0.0"}`

// dockerManifest is one entry of the manifest.json `docker save` writes.
type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// WriteArchive writes img as a tar of an OCI image layout (oci-layout,
// index.json, blobs/sha256/…), which `ctr images import` and `podman load`
// read, plus the manifest.json of `docker save` pointing at the same
// blobs, which `docker load` reads: one archive for all three, as `docker
// save` itself writes since Docker 25. The image is named ref in both
// (index annotations io.containerd.image.name and
// org.opencontainers.image.ref.name; RepoTags). Every tar entry carries
// mtime, so the archive's bytes depend only on the image.
func WriteArchive(w io.Writer, img v1.Image, ref string, mtime time.Time) (v1.Hash, error) {
	n, err := parseRef(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Hash{}, err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Hash{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mt, Digest: digest, Size: int64(len(manifest)),
			Annotations: map[string]string{
				"io.containerd.image.name":          n.full,
				"org.opencontainers.image.ref.name": n.tag,
			},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return v1.Hash{}, err
	}
	dm := []dockerManifest{{Config: blobPath(cfgName), RepoTags: []string{n.familiar}}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return v1.Hash{}, err
		}
		dm[0].Layers = append(dm[0].Layers, blobPath(d))
	}
	dmJSON, err := json.Marshal(dm)
	if err != nil {
		return v1.Hash{}, err
	}

	tw := tar.NewWriter(w)
	mtime = mtime.UTC()
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, r); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if err := dir("blobs/"); err != nil {
		return v1.Hash{}, err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return v1.Hash{}, err
	}
	if err := file(blobPath(cfgName), int64(len(config)), bytes.NewReader(config)); err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return v1.Hash{}, err
		}
		size, err := l.Size()
		if err != nil {
			return v1.Hash{}, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return v1.Hash{}, err
		}
		err = file(blobPath(d), size, rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
	}
	if err := file(blobPath(digest), int64(len(manifest)), bytes.NewReader(manifest)); err != nil {
		return v1.Hash{}, err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"index.json", indexJSON}, {"manifest.json", dmJSON}, {"oci-layout", []byte(ociLayout)}} {
		if err := file(f.name, int64(len(f.b)), bytes.NewReader(f.b)); err != nil {
			return v1.Hash{}, err
		}
	}
	return digest, tw.Close()
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
