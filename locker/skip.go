package locker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Skip says what RecordSkip writes: the final record of a slot that nobody
// claimed, once no replica may claim it any more.
type Skip struct {
	MarkKey, MetaKey string
	Slot             time.Time
	// FirstSeen is stored as the job's first sight when it has none yet
	// (see Claim.FirstSeen); a slot before the job's first sight is never
	// recorded (ErrUnborn).
	FirstSeen time.Time
	Record    string
	Retention time.Duration
	// NotBefore and NotAfter (server clock) bound when the record may be
	// written: from the instant no replica may still claim the slot, until
	// the instant a run's mark could have expired, after which an absent
	// mark proves nothing.
	NotBefore, NotAfter time.Time
	// HistoryKey, HistoryLen and HistoryTTL as in Claim.
	HistoryKey string
	HistoryLen int
	HistoryTTL time.Duration
}

// RecordSkip writes s.Record to the slot's mark (and history) if the mark
// is absent, between NotBefore and NotAfter on the server's clock, and
// raises the job's high-water slot to s.Slot, in one script call per node.
// It returns nil once recorded; a NotObtainedError wrapping ErrEarly (with
// Wait) before NotBefore, ErrSlotClaimed when the slot has a claim or a
// record, ErrLate after NotAfter, ErrUnborn before the job's first sight;
// or the I/O error (ErrNoQuorum in quorum mode when fewer than a majority
// answered).
func (l *Locker) RecordSkip(ctx context.Context, s Skip) error {
	return l.RecordSkips(ctx, []Skip{s})[0]
}

// RecordSkips is RecordSkip for each of ss, at once: several skips share
// one script call per node (up to skipsPerCall; on a Cluster client only
// the skips whose keys share a hash tag, as a script cannot span hash
// slots), pipelined in a lane of their own on each node (not behind
// claims, see node), without a goroutine per call. Each skip is still its
// own decision; the errors are in the order of ss.
func (l *Locker) RecordSkips(ctx context.Context, ss []Skip) []error {
	batches := l.skipBatches(ss)
	gs := make([]*gather[[]obtainReply], len(batches))
	for b, idx := range batches {
		gs[b] = fanout(ctx, l.nodes, laneSkip, l.opts.NodeTimeout, recordsScript, skipsLine(ss, idx), parseRecordsCmd(len(idx)))
	}
	errs := make([]error, len(ss))
	rs := make([]nodeResult[obtainReply], 0, len(l.nodes))
	for b, g := range gs {
		all := g.all()
		for k, i := range batches[b] {
			rs = rs[:0]
			for _, r := range all {
				one := nodeResult[obtainReply]{node: r.node, err: r.err}
				if r.err == nil {
					one.val = r.val[k]
				}
				rs = append(rs, one)
			}
			errs[i] = l.recorded(ctx, rs)
		}
	}
	return errs
}

// skipsPerCall bounds the skips of one script call: about 10 commands
// each, so that a call holds Redis for about a millisecond at most.
const skipsPerCall = 64

// skipBatches groups the indexes of ss into script calls: skips with the
// same key names (with or without a history), and on a Cluster client the
// same hash tag, up to skipsPerCall each, in the order of ss.
func (l *Locker) skipBatches(ss []Skip) [][]int {
	oneServer := true
	for _, n := range l.nodes {
		oneServer = oneServer && n.oneServer
	}
	type group struct {
		tag     string
		history bool
	}
	open := map[group]int{} // the batch each group fills now
	var out [][]int
	for i, s := range ss {
		g := group{history: s.HistoryKey != ""}
		if !oneServer {
			if g.tag = hashTag(s.MarkKey); g.tag == "" {
				out = append(out, []int{i}) // no tag: the key's own slot
				continue
			}
		}
		b, ok := open[g]
		if !ok || len(out[b]) == skipsPerCall {
			b = len(out)
			out = append(out, make([]int, 0, min(len(ss)-i, skipsPerCall)))
			open[g] = b
		}
		out[b] = append(out[b], i)
	}
	return out
}

// hashTag is the part of key that Redis Cluster hashes when it has one:
// between the first "{" and the next "}", when not empty.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return ""
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return ""
	}
	return key[open+1 : open+1+end]
}

// The argument names of a skip in records.lua, without and with a history.
const (
	skipFields        = "slot,first,record,retention,not_before,not_after"
	skipFieldsHistory = skipFields + ",history_len,history_ttl,history_score"
)

// skipsLine is the records.lua command line that records the skips of ss
// at idx, which all have a history key or all have none.
func skipsLine(ss []Skip, idx []int) []any {
	history := ss[idx[0]].HistoryKey != ""
	nk, nf, names, fields := 2, 6, "mark,meta", skipFields
	if history {
		nk, nf, names, fields = 3, 9, "mark,meta,history", skipFieldsHistory
	}
	out := make([]any, 0, 3+len(idx)*(nk+nf)+4)
	out = append(out, "evalsha", recordsScript.sha, len(idx)*nk)
	for _, i := range idx {
		out = append(out, ss[i].MarkKey, ss[i].MetaKey)
		if history {
			out = append(out, ss[i].HistoryKey)
		}
	}
	out = append(out, names, "fields", fields, "--")
	for _, i := range idx {
		s := &ss[i]
		out = append(out, strconv.FormatInt(s.Slot.Unix(), 10), strconv.FormatInt(firstSeen(s.FirstSeen, s.Slot), 10),
			s.Record, ms(s.Retention), unixMS(s.NotBefore), unixMS(s.NotAfter))
		if history {
			out = append(out, strconv.Itoa(s.HistoryLen), ms(s.HistoryTTL), unixMS(s.Slot))
		}
	}
	return out
}

// parseRecordsCmd parses records.lua's reply: n replies in the form of
// obtain.lua's.
func parseRecordsCmd(n int) func(*redis.Cmd) ([]obtainReply, error) {
	return func(cmd *redis.Cmd) ([]obtainReply, error) {
		a, ok := cmd.Val().([]any)
		if !ok || len(a) != n {
			return nil, fmt.Errorf("locker: unexpected records reply %v: want %d replies", cmd.Val(), n)
		}
		out := make([]obtainReply, n)
		for i, v := range a {
			r, err := parseObtain(v)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
}

// recorded is RecordSkip's verdict on the nodes' replies.
func (l *Locker) recorded(ctx context.Context, rs []nodeResult[obtainReply]) error {
	counts := map[string]int{}
	var best obtainReply
	answered := 0
	for _, r := range rs {
		if r.err != nil {
			continue
		}
		answered++
		counts[r.val.code]++
		if r.val.code == replyEarly && r.val.num > best.num {
			best = r.val
		}
	}
	switch {
	case answered < l.quorum:
		if len(l.nodes) == 1 {
			return fmt.Errorf("locker: record skip: %w", withCtx(ctx, joinErrs(rs)))
		}
		return fmt.Errorf("locker: record skip: %w: %d of %d nodes answered: %w", ErrNoQuorum, answered, len(l.nodes), withCtx(ctx, joinErrs(rs)))
	case counts[replyRecorded]+counts[replyClaimed] >= l.quorum && counts[replyRecorded] > 0:
		return nil
	case counts[replyEarly] > 0:
		return fmt.Errorf("locker: record skip: %w", best.err())
	case counts[replyClaimed] > 0:
		return fmt.Errorf("locker: record skip: %w", &NotObtainedError{Reason: ErrSlotClaimed})
	case counts[replyUnborn] > 0:
		return fmt.Errorf("locker: record skip: %w", &NotObtainedError{Reason: ErrUnborn})
	}
	return fmt.Errorf("locker: record skip: %w", &NotObtainedError{Reason: ErrLate})
}
