package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	out := fs.String("o", "", "output archive (written atomically)")
	ref := fs.String("ref", "", "image reference, [REGISTRY/]REPOSITORY:TAG")
	arch := fs.String("arch", runtime.GOARCH, "GOARCH of the files (checked against ELF headers)")
	created := fs.String("created", os.Getenv("SOURCE_DATE_EPOCH"), "time stamp, Unix seconds (default $SOURCE_DATE_EPOCH, else 0)")
	var entrypoint, cmd, env, labels listFlag
	fs.Var(&entrypoint, "entrypoint", "ENTRYPOINT argument (repeat for more)")
	fs.Var(&cmd, "cmd", "CMD argument (repeat for more)")
	fs.Var(&env, "env", "environment variable NAME=VALUE (repeatable)")
	fs.Var(&labels, "label", "label KEY=VALUE (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: image -o ARCHIVE -ref NAME:TAG [flags] SRC=DST...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *ref == "" || fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("-o, -ref and at least one SRC=DST are required")
	}
	s := Spec{Ref: *ref, Arch: *arch, Entrypoint: entrypoint, Cmd: cmd, Env: env}
	secs := int64(0)
	if *created != "" {
		var err error
		if secs, err = strconv.ParseInt(*created, 10, 64); err != nil || secs < 0 {
			return fmt.Errorf("created %q: want Unix seconds", *created)
		}
	}
	s.Created = time.Unix(secs, 0)
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("env %q: want NAME=VALUE", kv)
		}
	}
	for _, kv := range labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("label %q: want KEY=VALUE", kv)
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
	for _, a := range fs.Args() {
		f, err := ParseFile(a)
		if err != nil {
			return err
		}
		s.Files = append(s.Files, f)
	}
	if _, err := parseRef(s.Ref); err != nil {
		return err
	}
	img, err := Build(s)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename: ENOENT, harmless
	digest, err := WriteArchive(tmp, img, s.Ref, s.Created)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fmt.Println(digest)
	return nil
}
