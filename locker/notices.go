package locker

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// notices delivers replace messages (overlap replace: a later claim tells
// the holder of a lease to stop, see Claim.Replace) to the leases that
// listen for them. It keeps one pub/sub connection per node, opened with
// the first listening lease and closed with the last, and one goroutine per
// connection that exits when it closes. Renewals are the fallback: a
// message missed (sent before the subscription took effect, or during a
// reconnect) is noticed at the next renewal.
type notices struct {
	lk *Locker

	mu    sync.Mutex
	subs  map[string]map[*Lease]struct{} // channel -> listening leases
	conns []*noticeConn                  // per node; nil while no lease listens
}

// noticeConn is one node's pub/sub connection and its reader.
type noticeConn struct {
	ps   *redis.PubSub
	done chan struct{} // closed when the reader exits
}

func (n *notices) init(lk *Locker) { n.lk = lk }

// add makes l listen on channel; false when no connection could be opened
// (the lease then relies on renewals).
func (n *notices) add(channel string, l *Lease) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs == nil {
		n.subs = map[string]map[*Lease]struct{}{}
	}
	ls := n.subs[channel]
	if ls == nil {
		ls = map[*Lease]struct{}{}
		n.subs[channel] = ls
		n.subscribe(channel)
	}
	ls[l] = struct{}{}
	return true
}

// subscribe adds channel on every node's connection, opening it when
// needed. Called with mu held.
func (n *notices) subscribe(channel string) {
	ctx, cancel := context.WithTimeout(context.Background(), n.lk.opts.NodeTimeout)
	defer cancel()
	if n.conns == nil {
		n.conns = make([]*noticeConn, len(n.lk.nodes))
		for i, nd := range n.lk.nodes {
			c := &noticeConn{ps: nd.client.Subscribe(ctx, channel), done: make(chan struct{})}
			n.conns[i] = c
			go n.read(c)
		}
		return
	}
	for _, c := range n.conns {
		_ = c.ps.Subscribe(ctx, channel) // on error, renewals are the fallback
	}
}

// remove stops l listening; the last lease on a channel unsubscribes it,
// and the last lease of all closes the connections and waits for their
// readers.
func (n *notices) remove(channel string, l *Lease) {
	n.mu.Lock()
	ls := n.subs[channel]
	delete(ls, l)
	var closing []*noticeConn
	if len(ls) == 0 {
		delete(n.subs, channel)
		if len(n.subs) == 0 {
			closing, n.conns = n.conns, nil
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), n.lk.opts.NodeTimeout)
			for _, c := range n.conns {
				_ = c.ps.Unsubscribe(ctx, channel)
			}
			cancel()
		}
	}
	n.mu.Unlock()
	for _, c := range closing {
		_ = c.ps.Close()
		<-c.done
	}
}

// read delivers the messages of one connection until it is closed.
func (n *notices) read(c *noticeConn) {
	defer close(c.done)
	for msg := range c.ps.Channel() {
		n.mu.Lock()
		var ls []*Lease
		for l := range n.subs[msg.Channel] {
			ls = append(ls, l)
		}
		n.mu.Unlock()
		for _, l := range ls {
			l.notice(msg.Payload)
		}
	}
}
