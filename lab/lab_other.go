//go:build !linux

package lab

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// ErrUnsupported: the lab needs Linux network namespaces.
var ErrUnsupported = errors.New("lab: network namespaces need Linux")

// Lab is a running lab instance (Linux only).
type Lab struct{ Spec Spec }

// Up fails: the lab needs Linux.
func Up(context.Context, Spec, *slog.Logger) (*Lab, error) { return nil, ErrUnsupported }

// Load fails: the lab needs Linux.
func Load(string) (*Lab, error) { return nil, ErrUnsupported }

// Down fails: the lab needs Linux.
func Down(context.Context, string) error { return ErrUnsupported }

// WithLogger returns l.
func (l *Lab) WithLogger(*slog.Logger) *Lab { return l }

// Status fails: the lab needs Linux.
func (l *Lab) Status(context.Context, io.Writer) error { return ErrUnsupported }

// Down fails: the lab needs Linux.
func (l *Lab) Down(context.Context) error { return ErrUnsupported }

// MeasureConvergence fails: the lab needs Linux.
func (l *Lab) MeasureConvergence(context.Context, int) ([]time.Duration, error) {
	return nil, ErrUnsupported
}

// SpeakerPID fails: the lab needs Linux.
func (l *Lab) SpeakerPID(int) (int, error) { return 0, ErrUnsupported }

// ProcRSS is "?": there is no /proc to read.
func ProcRSS(int) string { return "?" }
