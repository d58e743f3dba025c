package bgp

import (
	"context"
	"time"

	"github.com/podrouter/podrouter/health"
)

// drainMachine is the one place a drain lives: a cordon or the drain taint
// (through the agent's SetDrained), `podrouter drain` and a drain-mode
// shutdown (DrainAndWait) all move it. States are health.DrainState:
//
//	none ──SetDrained(true)──► withdrawn                                 (bgp.drain.mode: withdraw)
//	none ──SetDrained(true)──► depreferred ──withdrawAfter──► withdrawn   (bgp.drain.mode: deprefer)
//	any  ──SetDrained(false)─► none
//
// DrainAndWait is SetDrained(true) that returns once withdrawn (and
// withdraws at once when its context ends first). The advertisements
// follow the state (SetAdvertisements): depreferred re-advertises the pod
// CIDRs with the deprefer attributes, withdrawn advertises nothing;
// sessions stay up in every state.
type drainMachine struct {
	state health.DrainState
	since time.Time   // when depreferred began
	gen   uint64      // bumped on every transition: a stale timer sees it
	timer *time.Timer // depreferred -> withdrawn
}

// SetDrained drains (true) or undrains (false) the pod CIDRs. It is level
// triggered: the same value again changes nothing.
func (s *Speaker) SetDrained(ctx context.Context, drained bool) error {
	s.mu.Lock()
	d, m := s.cfg.Drain, &s.drain
	switch {
	case drained && m.state == health.DrainNone:
		m.gen++
		if d.Mode == DrainDeprefer && d.WithdrawAfter > 0 {
			m.state, m.since = health.DrainDepreferred, time.Now()
			gen := m.gen
			m.timer = time.AfterFunc(d.WithdrawAfter, func() { s.withdrawDepreferred(gen) })
			s.log.Info("draining: pod CIDRs depreferred, withdrawn after", "withdraw_after", d.WithdrawAfter,
				"as_path_prepend", d.ASPathPrepend, "med", d.MED, "graceful_shutdown_community", d.GracefulShutdown)
		} else {
			m.state = health.DrainWithdrawn
			s.log.Info("drained: pod CIDRs withdrawn")
		}
	case !drained && m.state != health.DrainNone:
		m.gen++
		if m.timer != nil {
			m.timer.Stop()
			m.timer = nil
		}
		m.state = health.DrainNone
		s.log.Info("undrained: pod CIDRs advertised")
	default:
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	return s.SetAdvertisements(ctx, s.desired())
}

// withdrawDepreferred ends the deprefer phase begun at generation gen.
func (s *Speaker) withdrawDepreferred(gen uint64) {
	s.mu.Lock()
	if gen != s.drain.gen || s.drain.state != health.DrainDepreferred {
		s.mu.Unlock()
		return
	}
	s.drain.gen++
	s.drain.state = health.DrainWithdrawn
	k := s.life.kicker
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.SetAdvertisements(ctx, s.desired()); err != nil {
		s.log.Error("drain: withdraw after deprefer", "err", err)
	} else {
		s.log.Info("drain: depreferred pod CIDRs withdrawn")
	}
	if k != nil {
		k.Kick()
	}
}

// DrainAndWait drains and, in DrainDeprefer mode, returns once the pod
// CIDRs are withdrawn (or ctx ends: then it withdraws at once).
func (s *Speaker) DrainAndWait(ctx context.Context) error {
	if err := s.SetDrained(ctx, true); err != nil {
		return err
	}
	s.mu.Lock()
	gen, state := s.drain.gen, s.drain.state
	wait := time.Until(s.drain.since.Add(s.cfg.Drain.WithdrawAfter))
	s.mu.Unlock()
	if state == health.DrainDepreferred {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		s.withdrawDepreferred(gen)
	}
	return nil
}

// DrainStatus is where the drain is; WithdrawIn counts down the deprefer
// phase.
func (s *Speaker) DrainStatus() health.Drain {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := health.Drain{State: s.drain.state}
	if d.State == health.DrainDepreferred {
		d.WithdrawIn = max(0, time.Until(s.drain.since.Add(s.cfg.Drain.WithdrawAfter)))
	}
	return d
}
