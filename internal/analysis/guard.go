package analysis

import (
	"context"
	"fmt"
	"time"
)

// pending is a check running in its own goroutine. The check reports
// through a buffered channel, so that a check abandoned at its deadline
// finishes (its context is cancelled) without blocking and without
// touching the Verdict.
type pending[T any] struct {
	name    string
	timeout time.Duration
	ctx     context.Context
	began   time.Time
	ch      chan outcome[T]
	took    time.Duration
}

type outcome[T any] struct {
	val T
	err error
}

// phase is a group of checks that start together and share one deadline:
// one timer per phase rather than one per check.
type phase struct {
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration
}

func newPhase(parent context.Context, timeout time.Duration) *phase {
	ctx, cancel := context.WithTimeout(parent, timeout)
	return &phase{ctx: ctx, cancel: cancel, timeout: timeout}
}

// start runs f in a goroutine under the phase's deadline. A panic in f is
// recovered and reported as an error wrapping ErrPanic.
func start[T any](ph *phase, name string, f func(context.Context) T) *pending[T] {
	p := &pending[T]{name: name, timeout: ph.timeout, ctx: ph.ctx, began: time.Now(), ch: make(chan outcome[T], 1)}
	go func() {
		defer func() {
			if r := recover(); r != nil {
				p.ch <- outcome[T]{err: fmt.Errorf("%w: %s: %v", ErrPanic, name, r)}
			}
		}()
		p.ch <- outcome[T]{val: f(p.ctx)}
	}()
	return p
}

// wait returns the check's value, or an error wrapping ErrPanic or
// ErrDeadline: the caller turns it into a temperror (fail closed).
func (p *pending[T]) wait() (T, error) {
	var o outcome[T]
	select {
	case o = <-p.ch:
	case <-p.ctx.Done():
		select {
		case o = <-p.ch: // finished at the deadline: keep its answer
		default:
			o.err = fmt.Errorf("%w: %s did not finish within %v", ErrDeadline, p.name, p.timeout)
			if cause := context.Cause(p.ctx); cause != nil && cause != context.DeadlineExceeded {
				o.err = fmt.Errorf("%w: %s: %w", ErrDeadline, p.name, cause)
			}
		}
	}
	p.took = time.Since(p.began)
	return o.val, o.err
}

// CheckRun reports how one check ran.
type CheckRun struct {
	// Name is spf, spf-helo, dkim, arc, iprev or dmarc.
	Name string
	// Duration is the time from the start of the check to its result.
	Duration time.Duration
	// Failure is nil when the check returned a result of its own, else
	// the panic or deadline (wrapping ErrPanic or ErrDeadline) that made
	// it a temperror.
	Failure error
}

func (v *Verdict) note(p interface{ run() CheckRun }, err error) {
	r := p.run()
	r.Failure = err
	v.Checks = append(v.Checks, r)
}

func (p *pending[T]) run() CheckRun { return CheckRun{Name: p.name, Duration: p.took} }
