// Package store is redcron's Redis data model: it names every key of a job
// and builds and parses every record, and reads and writes the state kept
// beside the leases (pause, history, marks) through the locker, so that in
// quorum mode they reach a majority of nodes. The Lua scripts (package
// locker) receive these keys and records as arguments and never build or
// parse one.
//
// Every key of job J under prefix P shares the hash tag {J}, so that one
// script can reach all of them on Redis Cluster:
//
//	key                      type    TTL                       written by
//	P:{J}:meta               hash    none (one per job)        every claim: "fence" counter, "hw" highest slot
//	                                                           decided (unix s), "first" first sight (unix s),
//	                                                           "rb" and "rh" the ring's base and high-water;
//	                                                           quorum write-backs: "fby" token:fence of the
//	                                                           last one that raised "fence"
//	P:{J}:ring               string  none (512 bytes per job)  every slot claim and skip: bit slot % 4096 set
//	                                                           once the slot is decided (locker.RingSpan)
//	P:{J}:lease              string  lock_ttl, renewed         claim, renewal, finish, release (overlap forbid
//	                                                           and replace): the running run's token
//	P:{J}:lease:<unix>       string  lock_ttl, renewed         the same, one per slot (overlap allow)
//	P:{J}:lease:manual:<ns>  string  lock_ttl, renewed         a manual run's own lease (overlap allow)
//	P:{J}:next               string  holder's TTL + 2 lock_ttl a claim that replaces a running run (overlap
//	                                                           replace): its token, until it takes the lease
//	P:{J}:slot:<unix>        hash    mark retention            the slot's claim ("token", "fence", "run": the
//	                                                           running Record, "prevhw") and final Record ("end")
//	P:{J}:manual:<ns>        hash    mark retention            the same, for a manual run
//	P:{J}:history            list    history TTL, history len  every final Record, newest first
//	P:{J}:paused             string  none (one per job)        pause and resume: the operator's note
//	P:{J}:events             channel                           a replacing claim tells the holder to stop
package store
