package store

// ACLCommands are the Redis commands a replica and the control commands
// send, each for a reason (see ACLRules). Commands the scripts call are
// checked against the ACL too, so they are listed even though only
// EVALSHA reaches the server from the client.
var ACLCommands = []string{
	// The connection: /readyz's PING, and SELECT for a database other than
	// 0. Redis lets every user send HELLO and AUTH; go-redis's CLIENT
	// SETINFO (Redis 7.2 and later) may be refused: it goes on without it.
	"ping", "select",
	// The Lua scripts (EVAL when the server lost them: a restart, SCRIPT
	// FLUSH), the server's clock, and what the scripts call.
	"evalsha", "eval", "time",
	"get", "set", "del", "exists", "pexpire", "pttl",
	// The digests of the live replicas' registrations.
	"mget",
	"hget", "hmget", "hset", "hdel", "hincrby", "hgetall",
	"zadd", "zrem", "zrange", "zrangebyscore", "zrevrange", "zremrangebyrank", "zremrangebyscore",
	// The job's ring of decided slots.
	"setbit", "getbit", "getrange", "setrange",
	// Trigger requests: a list, queued by `redcron trigger`, taken by a replica.
	"lpush", "expire", "rpop", "lpos", "lrem",
	// overlap: replace tells the running run to stop.
	"publish", "subscribe", "unsubscribe",
	// min_replicas_ack waits for the replicas.
	"wait",
}

// ACLRules are the rules of the least-privileged Redis ACL user for a
// cluster under prefix: its keys (every key is "<prefix>:..."), its
// pub/sub channels ("<prefix>:{job}:events") and the commands of
// ACLCommands, nothing else. CONFIG and INFO are left out: without them a
// replica cannot check eviction, persistence or (with min_replicas_ack)
// its replicas at start, and says so once in a warning; add
// "+config|get" and "+info" to let it check (CONFIG GET also reveals
// every setting, requirepass and masterauth included). The README's
// Production section prints them for the default prefix.
func ACLRules(prefix string) []string {
	rules := []string{"resetkeys", "~" + prefix + ":*", "resetchannels", "&" + prefix + ":*", "-@all"}
	for _, c := range ACLCommands {
		rules = append(rules, "+"+c)
	}
	return rules
}
