package scheduler

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redcron/redcron/scheduler/store"
)

// share spreads the claims of a cluster over its replicas (DESIGN promise
// 11). Every replica beats every ShareBeat on Redis's clock and learns the
// others' beats in the same round trip. For each (job, slot) the live
// replicas that define the job alike are ranked by rendezvous hashing; the
// first claims at the slot, the others do not send anything. HandOff (three
// beats) after the slot, each of the others looks again: when the replicas
// ranked above it have not beaten since the slot (dead, stalled, cut off
// from Redis, or with their clock off), the first of those that have
// beaten steps in and claims. The claim itself keeps a slot to one run, so
// a view that differs between replicas costs a redundant claim, never a
// second run; where a replica cannot tell (no beat answered yet, a
// replica with another config whose jobs it does not know, a job defined
// differently) it claims, as every replica did before sharing. Where it
// cannot rely on the first (its view is stale, or every replica above it
// says it is off), the first fallbackClaimers of the ranking claim, not
// every replica: a slow moment must not multiply the claims by R.
type share struct {
	s *Scheduler
	// view is the last answer to this replica's beat; nil until the first.
	view atomic.Pointer[shareView]
	// members are the live replicas' registrations (their jobs), as the
	// registry last read them; nil until the first read. Only replicas
	// whose config hash differs from this one's need theirs read.
	members atomic.Pointer[map[string]store.Replica]
	// ranked is the ranking of the latest view, members and hash
	// (nowRanking).
	ranked atomic.Pointer[rankedView]
	// hash is this replica's config hash (its registration's, set before
	// that is written), which its beats carry so that the others see a
	// reload at once, and so that those with the same hash rank it
	// without reading its registration.
	hash atomic.Pointer[string]
	// refresh asks the registry to read the registrations again, when a
	// beat shows a replica whose registration is unknown or stale.
	refresh chan struct{}
	// slowUntil (Unix ns, scheduler clock): until then this replica's beats
	// say it claims nothing, because a beat of its own was slow or failed.
	slowUntil atomic.Int64
	failed    int // beats failed in a row; beat goroutine only
	// viewed is closed when the first view is stored (see awaitView).
	viewed     chan struct{}
	viewedOnce sync.Once
}

// stuckAfter is how long a claim's reply may be outstanding before this
// replica's beats say it claims nothing: its claims may sit queued behind
// a held reply while its beats, on another connection, still reach Redis
// and would vouch for them. Half a beat, so that the beat that says so
// reaches Redis, and the others read it, before they look at HandOff.
func (sh *share) stuckAfter() time.Duration { return sh.s.opts.ShareBeat / 2 }

// slowFor is how long a replica whose beat failed leaves its share to the
// others.
const slowFor = time.Second

// shareView is one beat's answer.
type shareView struct {
	live store.Live
	got  time.Time // on this replica's clock
	// beats are the last beats of the other replicas that say they
	// claim, oldest first (see mayStepIn).
	beats []time.Time
}

// newShareView is the view of one beat's answer, got at got.
func (sh *share) newShareView(live store.Live, got time.Time) *shareView {
	v := &shareView{live: live, got: got}
	for id, r := range live.Replicas {
		if id != sh.s.opts.Replica && claimsIn(r.State) {
			v.beats = append(v.beats, r.Beat)
		}
	}
	slices.SortFunc(v.beats, time.Time.Compare)
	return v
}

// Beat states: what a replica says of itself in its beats.
const (
	stateClaims = "claims" // it claims the firings it is first for
	stateOff    = "off"    // its clock is off, Redis answers it slowly, a claim's reply is outstanding (stuckAfter), or it is shutting down: the others claim its share too
)

func newShare(s *Scheduler) *share {
	return &share{s: s, refresh: make(chan struct{}, 1), viewed: make(chan struct{})}
}

// awaitView waits, before the loop's first claims, until this replica's
// first beat is answered, at most CallTimeout. Without a view a replica
// cannot tell who claims and claims every firing; 30 replicas starting at
// once on 2 cores did so for seconds, which kept Redis answering more
// slowly than a beat and so kept them without a view (the replicas
// suite's runs that missed thousands of firings). Waiting for the view
// breaks that loop; past the bound (Redis down or that slow) the replica
// claims as before. Returns at once when sharing is off.
func (sh *share) awaitView(ctx context.Context) {
	if !sh.on() {
		return
	}
	t := sh.s.opts.Clock.NewTimer(sh.s.opts.CallTimeout)
	defer t.Stop()
	select {
	case <-sh.viewed:
	case <-t.C():
		sh.s.log.Info().Dur("waited", sh.s.opts.CallTimeout).Msg("no liveness beat answered yet: claiming every firing until one is")
	case <-ctx.Done():
	}
}

// on says whether work sharing is on: a positive ShareBeat and a store.
func (sh *share) on() bool { return sh.s.opts.ShareBeat > 0 && sh.s.store != nil }

// handOff is how long after a slot the others look whether the first
// replica beat since the slot: three beats, so that a live one surely has.
func (sh *share) handOff() time.Duration { return 3 * sh.s.opts.ShareBeat }

// forget is how long a beat is kept in Redis: replicas silent for longer
// are dropped from the set.
func (sh *share) forget() time.Duration { return max(10*time.Second, 20*sh.s.opts.ShareBeat) }

// setHash publishes this replica's config hash, for its next beats.
func (sh *share) setHash(h string) { sh.hash.Store(&h) }

// reloadingHash is the config hash a replica's beats carry while it loads
// a new config (see Reload): it matches no replica's, not even another
// reloading one's.
const reloadingHash = "reloading"

// sameHash says whether h, a beat's config hash, is this replica's (set as
// mine): such a replica defines every job as this one does, and needs no
// registration read to be ranked.
func sameHash(h string, mine *string) bool {
	return mine != nil && h == *mine && h != "" && h != reloadingHash
}

// kick asks the registry to register this replica and read the others
// again now.
func (sh *share) kick() {
	select {
	case sh.refresh <- struct{}{}:
	default:
	}
}

// setMembers publishes the registrations the registry read.
func (sh *share) setMembers(rs []store.Replica) {
	m := make(map[string]store.Replica, len(rs))
	for _, r := range rs {
		m[r.Replica] = r
	}
	sh.members.Store(&m)
}

// state is what this replica's next beat says of it: "<state>:<config hash>".
// Once its loop has ended (shutdown: running jobs finish, skip records
// come due) it claims nothing more, so it says off.
func (sh *share) state() string {
	st := stateClaims
	if sh.stopping() || !sh.s.clock.healthy() || sh.s.opts.Clock.Now().UnixNano() < sh.slowUntil.Load() || sh.s.locker.Stuck(sh.stuckAfter()) {
		st = stateOff
	}
	h := ""
	if p := sh.hash.Load(); p != nil {
		h = *p
	}
	return st + ":" + h
}

// stopping says whether the scheduler's loop has ended.
func (sh *share) stopping() bool {
	select {
	case <-sh.s.loopDone:
		return true
	default:
		return false
	}
}

// run beats every ShareBeat until ctx ends, then leaves the set, so that
// the others step in for this replica at once. A beat that waits for its
// reply does not delay the next: the others must read this replica's
// state within HandOff.
func (sh *share) run(ctx context.Context) {
	s := sh.s
	clk := s.opts.Clock
	for {
		start := clk.Now()
		sh.beat(ctx, sh.state())
		t := clk.NewTimer(max(0, s.opts.ShareBeat-clk.Now().Sub(start)))
		select {
		case <-ctx.Done():
			t.Stop()
			lctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
			sh.beat(lctx, "")
			cancel()
			return
		case <-t.C():
		}
	}
}

// beat sends one beat (state "" leaves) and keeps the answer.
func (sh *share) beat(ctx context.Context, state string) {
	s := sh.s
	cctx, cancel := context.WithTimeout(ctx, s.opts.ShareBeat)
	defer cancel()
	live, err := s.store.Beat(cctx, s.opts.Replica, state, sh.forget())
	if err != nil {
		// Redis answers this replica slowly (two beats in a row without a
		// reply within a beat) or not at all: its claims would be late
		// too. Its next beats say it claims nothing, so the others take
		// its share. One slow beat is not enough: a loaded machine has them.
		if sh.failed++; sh.failed >= 2 {
			sh.slowUntil.Store(s.opts.Clock.Now().Add(slowFor).UnixNano())
		}
		s.log.Debug().Err(err).Msg("liveness beat failed")
		return
	}
	sh.failed = 0
	s.reconnect.ok()
	if state == "" {
		return
	}
	sh.view.Store(sh.newShareView(live, s.opts.Clock.Now()))
	sh.viewedOnce.Do(func() { close(sh.viewed) })
	registered, mine := *orEmpty(sh.members.Load()), sh.hash.Load()
	for id, r := range live.Replicas {
		if id == s.opts.Replica || sameHash(hashOf(r.State), mine) {
			continue
		}
		if m, ok := registered[id]; !ok || m.ConfigHash != hashOf(r.State) {
			sh.kick() // the registry reads the registrations again
			return
		}
	}
}

func orEmpty(m *map[string]store.Replica) *map[string]store.Replica {
	if m == nil {
		return &map[string]store.Replica{}
	}
	return m
}

// hashOf is the config hash of a beat's state.
func hashOf(state string) string {
	_, h, _ := strings.Cut(state, ":")
	return h
}

// claimsIn says whether a beat's state says the replica claims.
func claimsIn(state string) bool { return strings.HasPrefix(state, stateClaims+":") }

// first says whether this replica claims (js, slot) at the slot: sharing
// is off, the replica cannot tell who else would, or the ranking says it
// claims (ranking.claims).
func (sh *share) first(js *jobState, slot time.Time) bool {
	if !sh.on() {
		return true
	}
	rk, _ := sh.nowRanking()
	return rk.claims(js, slot)
}

// stepIn says, HandOff after the slot, whether this replica claims (js,
// slot) after all: the replicas ranked above it have not beaten since due
// (or it cannot tell).
func (sh *share) stepIn(js *jobState, slot, due time.Time) bool {
	return sh.sinceRanking(due).claims(js, slot)
}

// mayStepIn says whether a replica may step in for a firing due at due, by
// the latest view: another replica that claims last beat before due, but
// not so long before that no replica can have counted it live, and first,
// when it decided the firing: that decision is made up to maxClaimAhead
// before due, on a view up to HandOff old (fresh), which counts a replica
// live up to HandOff after its beat (liveNow). So it may have stalled
// since. False without a fresh view: the first fallbackClaimers then claim
// at the slot, and nobody steps in.
func (sh *share) mayStepIn(due time.Time) bool {
	v := sh.view.Load()
	if v == nil || !sh.fresh(v) {
		return false
	}
	i, _ := slices.BinarySearchFunc(v.beats, due.Add(-maxClaimAhead-2*sh.handOff()), time.Time.Compare)
	return i < len(v.beats) && v.beats[i].Before(due)
}

// fallbackClaimers is how many replicas at most claim a firing when its
// first cannot be relied on: every replica's view of the others is stale
// (beats answered late, as on a starved machine), or every replica ranked
// above is "off". Each of the first fallbackClaimers in the ranking then
// claims, not every replica: were they all to claim, a slow moment would
// multiply the claims by R and make every replica slower still. Two, so
// that one more replica lost at that moment still leaves a claimer.
const fallbackClaimers = 2

// ranking is who may claim the firings decided on one share view: this
// replica and the live replicas, grouped by config hash. Replicas with the
// same hash define every job alike, so one lookup per group tells whether
// they run a job as this replica does. Built once per view (nowRanking)
// or per standby check (sinceRanking), then used for each firing;
// read-only once built.
type ranking struct {
	me string
	// meClaims is this replica's own state in the view: it claims.
	meClaims bool
	groups   []rankGroup
	// ok is false when this replica cannot tell: no view yet, or a live
	// replica whose registration it does not know or that changed.
	ok bool
	// stale is true when the view is older than HandOff: who is live and
	// who claims may have changed since (see claims).
	stale bool
}

// rankGroup is the ranked replicas of one config hash.
type rankGroup struct {
	jobs map[string]string // job -> fingerprint, as they registered it
	same bool              // this replica's hash: jobs unused, every job alike
	ids  []rankedReplica
}

// rankedReplica is one replica of a ranking and whether its beat said it
// claims.
type rankedReplica struct {
	id     string
	claims bool
}

// rankedView is nowRanking's cache: the ranking of one view, one read of
// the registrations and one config hash of this replica's, and the same
// marked stale.
type rankedView struct {
	v       *shareView
	members *map[string]store.Replica
	hash    *string
	rk      *ranking
	stale   *ranking
}

// nowRanking is the ranking of the replicas live now (beat within HandOff)
// in the latest view, and that view; built once per view. Once the view is
// older than HandOff the ranking says so (ranking.stale).
func (sh *share) nowRanking() (*ranking, *shareView) {
	v, members, mine := sh.view.Load(), sh.members.Load(), sh.hash.Load()
	if v == nil {
		return &ranking{}, v
	}
	c := sh.ranked.Load()
	if c == nil || c.v != v || c.members != members || c.hash != mine {
		rk := sh.rankingOf(v, members, mine, sh.liveNow)
		stale := *rk
		stale.stale = true
		c = &rankedView{v: v, members: members, hash: mine, rk: rk, stale: &stale}
		sh.ranked.Store(c)
	}
	if !sh.fresh(v) {
		return c.stale, v
	}
	return c.rk, v
}

// sinceRanking is the ranking of the replicas that beat since due, in the
// latest view; nowRanking's stale one when that view is older than
// HandOff, as it cannot tell who beat since.
func (sh *share) sinceRanking(due time.Time) *ranking {
	v := sh.view.Load()
	if v == nil || !sh.fresh(v) {
		rk, _ := sh.nowRanking()
		return rk
	}
	return sh.rankingOf(v, sh.members.Load(), sh.hash.Load(), func(_ *shareView, r store.LiveReplica) bool {
		return !r.Beat.Before(due)
	})
}

// rankingOf ranks the replicas of v that pass live, with mine, this
// replica's config hash, and members, the registrations read (either may
// be nil). A replica whose hash is mine defines every job alike. One with
// another hash that says it claims, and whose registration this replica
// has not read (or that changed since), leaves the ranking unable to tell;
// one that says it is off is left out then, as it is not relied on to
// claim.
func (sh *share) rankingOf(v *shareView, members *map[string]store.Replica, mine *string, live func(*shareView, store.LiveReplica) bool) *ranking {
	rk := &ranking{me: sh.s.opts.Replica, meClaims: true}
	if r, ok := v.live.Replicas[rk.me]; ok {
		rk.meClaims = claimsIn(r.State)
	}
	registered := *orEmpty(members)
	group := map[string]int{} // config hash -> index in groups
	for rid, r := range v.live.Replicas {
		if rid == rk.me || !live(v, r) {
			continue
		}
		claims := claimsIn(r.State)
		h := hashOf(r.State)
		same := sameHash(h, mine)
		m, known := registered[rid]
		if !same && (!known || m.ConfigHash != h) {
			if !claims {
				continue
			}
			return rk
		}
		i, seen := group[h]
		if !seen {
			i = len(rk.groups)
			group[h] = i
			rk.groups = append(rk.groups, rankGroup{jobs: m.Jobs, same: same})
		}
		rk.groups[i].ids = append(rk.groups[i].ids, rankedReplica{id: rid, claims: claims})
	}
	rk.ok = true
	return rk
}

// claims says whether this replica claims (js, slot) on this ranking,
// among itself and the replicas that define the job as it does: when it
// cannot tell (the ranking cannot, or a replica defines the job
// differently); on a stale ranking, when it is among the first
// fallbackClaimers by rendezvous hash; otherwise when no replica above it
// claims and it claims itself or is among the first fallbackClaimers.
// With every replica healthy that is the first alone.
func (rk *ranking) claims(js *jobState, slot time.Time) bool {
	if !rk.ok {
		return true
	}
	name, fp := js.job.Name, js.fingerprint
	key := rendezvousKeyOf(name, slot)
	mine := key.score(rk.me)
	above, claimerAbove := 0, false
	for _, g := range rk.groups {
		switch rfp, has := g.jobs[name]; {
		case g.same: // they define every job as this replica does
		case !has:
			continue // they do not run this job
		case rfp != fp:
			return true // defined differently: everyone claims
		}
		for _, r := range g.ids {
			if sc := key.score(r.id); sc > mine || (sc == mine && r.id < rk.me) {
				above++
				claimerAbove = claimerAbove || r.claims
			}
		}
	}
	if rk.stale {
		return above < fallbackClaimers
	}
	return !claimerAbove && (rk.meClaims || above < fallbackClaimers)
}

// fresh says whether v is recent enough to decide on: read within HandOff.
func (sh *share) fresh(v *shareView) bool {
	return sh.s.opts.Clock.Now().Sub(v.got) <= sh.handOff()
}

// rendezvousKey is the FNV-1a state after "job\x00slot\x00" (slot in Unix
// seconds, decimal): each replica's score for (job, slot) goes on from it
// with the replica's name, so that ranking R replicas hashes the job and
// slot once and allocates nothing.
type rendezvousKey uint64

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func rendezvousKeyOf(job string, slot time.Time) rendezvousKey {
	h := fnvString(fnvOffset64, job) * fnvPrime64 // then the 0 byte
	var b [20]byte
	for _, c := range strconv.AppendInt(b[:0], slot.Unix(), 10) {
		h = (h ^ uint64(c)) * fnvPrime64
	}
	return rendezvousKey(h * fnvPrime64)
}

// score is replica's score for the key's (job, slot): the replica with the
// highest score claims. FNV-1a, then a SplitMix64 finaliser for spread.
func (k rendezvousKey) score(replica string) uint64 {
	x := fnvString(uint64(k), replica)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// fnvString goes on with FNV-1a state h over s's bytes.
func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime64
	}
	return h
}
