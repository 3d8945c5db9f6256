package main

import (
	"fmt"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func printTable(cfg config, rs []result) {
	fmt.Printf("%d jobs on %q, %d replicas in one process, %v per scenario; steady window of each: the slots from %v after the start to %v before the stop.\n\n",
		cfg.jobs, cfg.spec, cfg.replicas, cfg.duration, cfg.warmup, cfg.cooldown)
	fmt.Println("| system | replica 0 skew | firings expected | runs | duplicates | misses | fire lag p50 / p99 / max (real clock) | lag p99 on the runner's clock | round trips / firing | claims / replica / firing | finishes / firing | CPU / replica | redis-server CPU | load (1m 5m 15m) |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, r := range rs {
		f := float64(r.v.expected)
		claims, finishes := float64(r.rt.claims), float64(r.rt.finishes)
		if r.system == "gocron" {
			// redsync: SET NX to lock, one EVALSHA (delete if token) to unlock.
			claims, finishes = float64(r.rt.cmds-r.rt.scripts), float64(r.rt.scripts)
		}
		fmt.Printf("| %s | %v | %d | %d | %d (%.2f %%) | %d (%.2f %%) | %s / %s / %s | %s | %.2f | %.2f | %.2f | %.1f %% of a core | %.1f %% of a core | %s |\n",
			name(r.system), r.skew, r.v.expected, r.v.runs,
			r.v.duplicates, 100*float64(r.v.duplicates)/f, r.v.misses, 100*float64(r.v.misses)/f,
			ms(pct(r.v.lag, 50)), ms(pct(r.v.lag, 99)), ms(pct(r.v.lag, 100)), ms(pct(r.v.lagOwn, 99)),
			float64(r.rt.roundTrips)/f, claims/f/float64(cfg.replicas), finishes/f,
			100*r.cpu.Seconds()/r.seconds/float64(cfg.replicas), 100*r.server.cpu.Seconds()/r.seconds, r.load)
	}
	fmt.Println()
	for _, r := range rs {
		var wins []string
		for i, w := range r.v.wins {
			wins = append(wins, fmt.Sprintf("r%d %d", i, w))
		}
		fmt.Printf("- %s, skew %v: latest start per slot (real clock) min %s, median %s, max %s; runs per replica %v; fence regressions %d; warn log lines %d; server calls in window: evalsha %d, eval %d, set %d, get %d, incr %d\n",
			name(r.system), r.skew, ms(pct(r.v.slotMax, 0)), ms(pct(r.v.slotMax, 50)), ms(pct(r.v.slotMax, 100)), wins, r.v.fenceRegressions, r.logLines,
			r.server.calls["evalsha"], r.server.calls["eval"], r.server.calls["set"], r.server.calls["get"], r.server.calls["incr"])
	}
	// Side by side, per skew.
	fmt.Println()
	fmt.Println("| skew | metric | redcron | gocron v2 + redsync | gocron / redcron |")
	fmt.Println("| --- | --- | ---: | ---: | ---: |")
	for _, a := range rs {
		if a.system != "redcron" {
			continue
		}
		for _, b := range rs {
			if b.system != "gocron" || b.skew != a.skew {
				continue
			}
			row := func(m, x, y string, ratio string) {
				fmt.Printf("| %v | %s | %s | %s | %s |\n", a.skew, m, x, y, ratio)
			}
			row("duplicates", fmt.Sprint(a.v.duplicates), fmt.Sprint(b.v.duplicates), ratio(float64(b.v.duplicates), float64(a.v.duplicates)))
			row("misses", fmt.Sprint(a.v.misses), fmt.Sprint(b.v.misses), ratio(float64(b.v.misses), float64(a.v.misses)))
			// On the runner's clock: a replica ahead that wins shows its
			// own lag, not -skew.
			for _, p := range []float64{50, 99} {
				x, y := pct(a.v.lagOwn, p), pct(b.v.lagOwn, p)
				row(fmt.Sprintf("lag p%g (runner's clock)", p), ms(x), ms(y), ratio(float64(y), float64(x)))
			}
			x2, y2 := float64(a.rt.roundTrips)/float64(a.v.expected), float64(b.rt.roundTrips)/float64(b.v.expected)
			row("round trips / firing", fmt.Sprintf("%.2f", x2), fmt.Sprintf("%.2f", y2), ratio(y2, x2))
			c1, c2 := a.cpu.Seconds()/a.seconds, b.cpu.Seconds()/b.seconds
			row("process CPU", fmt.Sprintf("%.1f %%", 100*c1), fmt.Sprintf("%.1f %%", 100*c2), ratio(c2, c1))
		}
	}
}

func ratio(a, b float64) string {
	switch {
	case b == 0 && a == 0:
		return "="
	case b == 0:
		return "∞ (redcron 0)"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func name(s string) string {
	if s == "gocron" {
		return "gocron v2 + redsync"
	}
	return s
}
