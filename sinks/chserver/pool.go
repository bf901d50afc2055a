package chserver

import (
	"context"
	"fmt"
	"sync"

	"github.com/sora3web/telemetry/sinks/chdb"
)

// pool runs sessionless statements on up to n engine connections at once.
// The engine runs statements on different connections in parallel, while
// one connection runs one at a time: with a single shared connection, a
// dashboard's slow query held back every other client's (a freshness
// probe, the audit monitor) for as long as it ran. Each statement's
// settings and database are its own (chdb.Request resets them after it),
// so a connection carries nothing from one statement to the next.
type pool struct {
	open  func() (*chdb.Session, error)
	slots chan struct{} // one per connection in use

	mu     sync.Mutex
	idle   []*chdb.Session
	closed bool
}

func newPool(n int, open func() (*chdb.Session, error)) *pool {
	return &pool{open: open, slots: make(chan struct{}, n)}
}

// exec runs req on a free connection, waiting for one while all n are
// busy (or until ctx ends).
func (p *pool) exec(ctx context.Context, req chdb.Request) (*chdb.Result, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for an engine connection: %w", ctx.Err())
	}
	defer func() { <-p.slots }()
	c, err := p.get()
	if err != nil {
		return nil, err
	}
	defer p.put(c)
	return c.Exec(ctx, req)
}

// get takes an idle connection or opens one.
func (p *pool) get() (*chdb.Session, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	c, err := p.open()
	if err != nil {
		return nil, fmt.Errorf("opening an engine connection: %w", err)
	}
	return c, nil
}

// put keeps c for the next statement, or closes it once the pool is
// closed.
func (p *pool) put(c *chdb.Session) {
	p.mu.Lock()
	if !p.closed {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// close closes the idle connections; those in use close when returned.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}
