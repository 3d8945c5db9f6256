package redistest

// ScriptLines is the script calls that the command line a makes, each as
// it would be sent alone ("evalsha" or "eval", sha or source, the number
// of keys, the keys, then the arguments): a itself for a script sent
// alone; the calls that it carries for a line of the locker's batch.lua
// (whose first argument is the number of calls, then for each its
// script's name, its number of keys and of arguments, and those
// arguments; see locker/batch.lua), with the batch's sha or source; nil
// for any other command.
func ScriptLines(a []any) [][]any {
	if len(a) < 3 || (a[0] != "evalsha" && a[0] != "eval") {
		return nil
	}
	nk, ok := a[2].(int)
	if !ok || len(a) < 3+nk {
		return nil
	}
	keys, argv := a[3:3+nk], a[3+nk:]
	count, ok := first(argv).(int)
	if !ok {
		return [][]any{a}
	}
	var out [][]any
	ki, ai := 0, 1
	for range count {
		if ai+3 > len(argv) {
			return out
		}
		pk, ok1 := argv[ai+1].(int)
		pa, ok2 := argv[ai+2].(int)
		if !ok1 || !ok2 || ki+pk > len(keys) || ai+3+pa > len(argv) {
			return out
		}
		line := append([]any{a[0], a[1], pk}, keys[ki:ki+pk]...)
		out = append(out, append(line, argv[ai+3:ai+3+pa]...))
		ki, ai = ki+pk, ai+3+pa
	}
	return out
}

// first is a's first element, or nil.
func first(a []any) any {
	if len(a) == 0 {
		return nil
	}
	return a[0]
}
