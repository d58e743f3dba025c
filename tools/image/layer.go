package main

import (
	"archive/tar"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// File is one file of the image: the host file Src, copied to the absolute
// path Dst in the image (as a Dockerfile `COPY Src Dst`).
type File struct {
	Src string
	Dst string
}

// ParseFile parses "SRC=DST".
func ParseFile(s string) (File, error) {
	src, dst, ok := strings.Cut(s, "=")
	if !ok || src == "" || dst == "" {
		return File{}, fmt.Errorf("file %q: want SRC=DST", s)
	}
	if !path.IsAbs(dst) || path.Clean(dst) != dst || dst == "/" {
		return File{}, fmt.Errorf("file %q: destination must be a clean absolute file path", s)
	}
	return File{Src: src, Dst: dst}, nil
}

// elfMachine is the ELF machine of each GOARCH the images are built for.
var elfMachine = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

// checkExecutable refuses what cannot run in an image with nothing else
// in it: an ELF file for another architecture, or one that needs an ELF
// interpreter (a dynamically linked binary: there is no libc). Files that
// are not ELF (configs, scripts) pass.
func checkExecutable(src, arch string) error {
	want, ok := elfMachine[arch]
	if !ok {
		return fmt.Errorf("architecture %q: want one of amd64, arm64, ppc64le, s390x, riscv64", arch)
	}
	magic := make([]byte, len(elf.ELFMAG))
	r, err := os.Open(src)
	if err != nil {
		return err
	}
	_, err = io.ReadFull(r, magic)
	r.Close()
	if err != nil || string(magic) != elf.ELFMAG {
		return nil // shorter than an ELF header or not ELF: a data file
	}
	f, err := elf.Open(src)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s is built for %s, the image for %s", src, f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (has an ELF interpreter); an image FROM scratch has no libc: build it with CGO_ENABLED=0", src)
		}
	}
	return nil
}

// entry is one tar entry of the layer: a directory, or a file whose
// content is read from src.
type entry struct {
	name string // relative to the root, no leading slash: "usr/local/bin/gobgp"
	dir  bool
	src  string
	size int64
	mode int64
}

// layerEntries lists the layer's entries in tar order: every parent
// directory before what it holds, names sorted. The host file's owner,
// times and permission bits other than "executable" do not reach the
// layer: that is what makes two builds of the same content identical.
func layerEntries(files []File) ([]entry, error) {
	isDir := map[string]bool{} // every name listed so far: directory or file
	var out []entry
	for _, f := range files {
		name := strings.TrimPrefix(f.Dst, "/")
		if dir, ok := isDir[name]; ok {
			if dir {
				return nil, fmt.Errorf("%s: is a directory of another file", f.Dst)
			}
			return nil, fmt.Errorf("%s: given twice", f.Dst)
		}
		st, err := os.Stat(f.Src)
		if err != nil {
			return nil, err
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", f.Src)
		}
		mode := int64(0o644)
		if st.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dir, ok := isDir[d]
			if ok && !dir {
				return nil, fmt.Errorf("/%s: is a file, and a directory of %s", d, f.Dst)
			}
			if !ok {
				isDir[d] = true
				out = append(out, entry{name: d + "/", dir: true, mode: 0o755})
			}
		}
		isDir[name] = false
		out = append(out, entry{name: name, src: f.Src, size: st.Size(), mode: mode})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// writeLayer writes the layer's uncompressed tar: root-owned entries, all
// stamped with mtime, in the order layerEntries gives. A source file that
// changed size since it was listed is an error, not a short or long copy.
func writeLayer(w io.Writer, es []entry, mtime time.Time) error {
	tw := tar.NewWriter(w)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag, h.Size = tar.TypeReg, e.size
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		n, err := io.Copy(tw, io.LimitReader(f, e.size+1))
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", e.src, err)
		}
		if n != e.size {
			return fmt.Errorf("%s changed while the layer was written (%d bytes, listed %d)", e.src, n, e.size)
		}
	}
	return tw.Close()
}
