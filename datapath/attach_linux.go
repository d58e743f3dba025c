package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

const (
	linkDir        = "links"
	uplinkPrefix   = "uplink_"
	endpointPrefix = "ep_"
)

// attachment is one tcx link held by this process.
type attachment struct {
	ifindex int
	l       link.Link
}

func linkPin(pinDir, prefix, ifname string) string {
	return filepath.Join(pinDir, linkDir, prefix+ifname)
}

// attachTCX attaches prog to ifindex's tcx ingress, or, when a pinned link
// from an earlier run exists for the same interface, replaces that link's
// program in place: a restart never stacks a second program on a hook.
func attachTCX(prog *ebpf.Program, ifindex int, pin string) (link.Link, error) {
	if old, err := link.LoadPinnedLink(pin, nil); err == nil {
		if sameHook(old, ifindex) {
			if err := old.Update(prog); err == nil {
				return old, nil
			}
		}
		// Stale (interface re-created) or not updatable: detach it.
		_ = old.Unpin() // best effort: Close below detaches an unpinned link
		old.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		_ = os.Remove(pin) // not a link (or unreadable): clear the path
	}
	l, err := link.AttachTCX(link.TCXOptions{
		Interface: ifindex,
		Program:   prog,
		Attach:    ebpf.AttachTCXIngress,
	})
	if err != nil {
		return nil, fmt.Errorf("attach tcx ingress on ifindex %d: %w", ifindex, err)
	}
	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		l.Close()
		return nil, fmt.Errorf("create link pin dir: %w", err)
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin link: %w", err)
	}
	return l, nil
}

func sameHook(l link.Link, ifindex int) bool {
	info, err := l.Info()
	if err != nil || info.Type != link.TCXType {
		return false
	}
	tcx := info.TCX()
	return tcx != nil && int(tcx.Ifindex) == ifindex && uint32(tcx.AttachType) == uint32(ebpf.AttachTCXIngress)
}

// detachPinned detaches and unpins the link pinned at path.
func detachPinned(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return errors.Join(err, os.Remove(path))
	}
	defer l.Close()
	return l.Unpin()
}

// pinnedLinks lists link pins with the given prefix, by interface name.
func pinnedLinks(pinDir, prefix string) (map[string]string, error) {
	ents, err := os.ReadDir(filepath.Join(pinDir, linkDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range ents {
		if name, ok := strings.CutPrefix(e.Name(), prefix); ok {
			out[name] = filepath.Join(pinDir, linkDir, e.Name())
		}
	}
	return out, nil
}

// HookPrograms returns the ids of the programs attached to ifindex's tcx
// ingress (for tests and `podrouter status`).
func HookPrograms(ifindex int) ([]uint32, error) {
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return nil, err
	}
	ids := make([]uint32, 0, len(res.Programs))
	for _, p := range res.Programs {
		ids = append(ids, uint32(p.ID))
	}
	return ids, nil
}

// Unpin detaches every link pinned under pinDir and removes all pins and
// the directory: the uninstall path. Only podrouter's own pins are touched.
func Unpin(pinDir string) error {
	var errs []error
	for _, prefix := range []string{uplinkPrefix, endpointPrefix} {
		pins, err := pinnedLinks(pinDir, prefix)
		errs = append(errs, err)
		for _, p := range pins {
			errs = append(errs, detachPinned(p))
		}
	}
	errs = append(errs, os.RemoveAll(pinDir))
	return errors.Join(errs...)
}
