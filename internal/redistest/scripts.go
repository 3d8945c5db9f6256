package redistest

// ScriptLines splits a script command line a ("evalsha", sha, nkeys,
// keys..., arguments...) into the script calls it makes, each as the line
// it would be sent alone; the calls that it carries for a line of the
// locker's batch.lua (whose first argument is the number of calls, then
// for each its script's name, its number of keys and of arguments, and
// those arguments; see locker/batch.lua), with the batch's sha or source;
// nil for any other command.
func ScriptLines(a []any) [][]any {
	var out [][]any
	ScriptCalls(a, func(keys, args []any) {
		line := append([]any{a[0], a[1], len(keys)}, keys...)
		out = append(out, append(line, args...))
	})
	return out
}

// ScriptCalls calls f with the keys and arguments of each script call that
// the command line a makes, as ScriptLines splits it, without copying them:
// f must not keep or change the slices. It calls f for no other command.
func ScriptCalls(a []any, f func(keys, args []any)) {
	if len(a) < 3 || (a[0] != "evalsha" && a[0] != "eval") {
		return
	}
	nk, ok := a[2].(int)
	if !ok || len(a) < 3+nk {
		return
	}
	keys, argv := a[3:3+nk], a[3+nk:]
	count, ok := first(argv).(int)
	if !ok {
		f(keys, argv)
		return
	}
	ki, ai := 0, 1
	for range count {
		if ai+3 > len(argv) {
			return
		}
		pk, ok1 := argv[ai+1].(int)
		pa, ok2 := argv[ai+2].(int)
		if !ok1 || !ok2 || ki+pk > len(keys) || ai+3+pa > len(argv) {
			return
		}
		f(keys[ki:ki+pk:ki+pk], argv[ai+3:ai+3+pa:ai+3+pa])
		ki, ai = ki+pk, ai+3+pa
	}
}

// first is a's first element, or nil.
func first(a []any) any {
	if len(a) == 0 {
		return nil
	}
	return a[0]
}
