package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// stats returns the median, minimum and maximum of v.
func stats(v []float64) (med, lo, hi float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

// cell formats the median and, for more than one value, the range.
func cell(v []float64, prec int) string {
	if len(v) == 0 {
		return "–"
	}
	med, lo, hi := stats(v)
	if len(v) == 1 {
		return fmt.Sprintf("%.*f", prec, med)
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, med, prec, lo, prec, hi)
}

// values picks one number from every run of server key at concurrency c.
func (b *bench) values(key string, c int, f func(sample) float64) []float64 {
	var v []float64
	for _, s := range b.samples[key][c] {
		v = append(v, f(s))
	}
	return v
}

func connPerSec(s sample) float64 { return s.res.ConnPerSec }
func p50(s sample) float64        { return s.res.P50 }
func p99(s sample) float64        { return s.res.P99 }
func cpuUS(s sample) float64      { return s.cpuUS }

// ratio is spawnd's median over the peer's, or "–".
func (b *bench) ratio(peer string, c int, f func(sample) float64) string {
	a, p := b.values("spawnd", c, f), b.values(peer, c, f)
	if len(a) == 0 || len(p) == 0 {
		return "–"
	}
	ma, _, _ := stats(a)
	mp, _, _ := stats(p)
	if mp == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", ma/mp)
}

func (b *bench) report(servers []*server, concs []int, runs int, notes []string, started time.Time, quiet string) {
	w := &strings.Builder{}
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	// hdr writes a table header: text columns first, then numbers.
	hdr := func(text int, cols ...string) {
		p("| %s |", strings.Join(cols, " | "))
		seps := make([]string, len(cols))
		for i := range cols {
			seps[i] = "---:"
			if i < text {
				seps[i] = "---"
			}
		}
		p("|%s|", strings.Join(seps, "|"))
	}
	row := func(cols ...string) { p("| %s |", strings.Join(cols, " | ")) }
	first, last := concs[0], concs[len(concs)-1]

	p("## spawnd benchmark, %s", started.UTC().Format("2006-01-02 15:04 MST"))
	p("")
	p("- machine: %s", machine(runtime.NumCPU()))
	p("- other work on the machine: %s", quiet)
	if v := versions(); v != "" {
		p("- peers: %s", v)
	}
	p("- %d interleaved runs of %s per server and concurrency; `/bin/echo ok` as nobody on 127.0.0.1; "+
		"servers and load generator under `env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C`; load generator %s, a separate process",
		runs, b.dur, runtime.Version())
	p("- cells: median (min–max) over the runs; the machine is shared with other work, and the spread shows how much that moved the numbers")
	for _, n := range notes {
		p("- %s", n)
	}
	p("")

	p("### Connections per second")
	p("")
	cols := []string{"server"}
	for _, c := range concs {
		cols = append(cols, fmt.Sprintf("c=%d", c))
	}
	hdr(1, append(cols, "failed")...)
	for _, s := range servers {
		r := []string{s.label}
		failed, conns := 0, 0
		for _, c := range concs {
			r = append(r, cell(b.values(s.key, c, connPerSec), 0))
			for _, sm := range b.samples[s.key][c] {
				failed += sm.res.Failures
				conns += sm.res.Conns
			}
		}
		row(append(r, fmt.Sprintf("%d of %d", failed, conns))...)
	}
	p("")

	p("### Latency, dial to end of file (ms)")
	p("")
	cols = []string{"server"}
	for _, c := range concs {
		cols = append(cols, fmt.Sprintf("p50 c=%d", c), fmt.Sprintf("p99 c=%d", c))
	}
	hdr(1, cols...)
	for _, s := range servers {
		r := []string{s.label}
		for _, c := range concs {
			r = append(r, cell(b.values(s.key, c, p50), 1), cell(b.values(s.key, c, p99), 1))
		}
		row(r...)
	}
	p("")

	p("### Daemon CPU time per connection (µs)")
	p("")
	p("utime+stime of the daemon's own processes from /proc/PID/stat, before and after each run, over the connections served. " +
		"Exited children are not counted (cutime/cstime excluded): the time a forked child spends before exec is not in these numbers. " +
		"Resolution: 10 ms per run.")
	p("")
	cols = []string{"server", "processes counted"}
	for _, c := range concs {
		cols = append(cols, fmt.Sprintf("c=%d", c))
	}
	hdr(2, cols...)
	for _, s := range servers {
		r := []string{s.label, s.counted}
		for _, c := range concs {
			r = append(r, cell(b.values(s.key, c, cpuUS), 0))
		}
		row(r...)
	}
	p("")

	if len(b.samples["spawnd"][first]) > 0 {
		p("### spawnd compared (ratio of medians, spawnd / peer)")
		p("")
		p("conn/s: above 1 is spawnd faster. Latency and CPU: below 1 is spawnd better.")
		p("")
		cols = []string{"peer"}
		for _, c := range concs {
			cols = append(cols, fmt.Sprintf("conn/s c=%d", c))
		}
		cols = append(cols, fmt.Sprintf("p50 c=%d", first), fmt.Sprintf("p99 c=%d", last))
		for _, c := range concs {
			cols = append(cols, fmt.Sprintf("CPU c=%d", c))
		}
		hdr(1, cols...)
		for _, s := range servers {
			if s.key == "spawnd" || s.key == "spawnd-limits" || s.key == "spawnd-acl" {
				continue
			}
			r := []string{s.label}
			for _, c := range concs {
				r = append(r, b.ratio(s.key, c, connPerSec))
			}
			r = append(r, b.ratio(s.key, first, p50), b.ratio(s.key, last, p99))
			for _, c := range concs {
				r = append(r, b.ratio(s.key, c, cpuUS))
			}
			row(r...)
		}
		p("")
	}

	// Tables of ratios of conn/s, run by run: each row is key over base.
	type ratioRow struct{ label, key, base string }
	for _, v := range []struct {
		title, text, goal string
		rows              []ratioRow
	}{
		{"Any TCP server over the raw spawn ceiling (1 in flight)",
			"One Go process (bench/goserver) that starts `/bin/echo ok` as the ceiling does, with the connection instead of /dev/null, " +
				"bounds any server behind a TCP socket on this machine: the client's connect, the wake-ups and the command's write " +
				"and close are what a socket adds. Both sides of each row",
			"the goal for spawnd / ceiling: at least 0.9",
			[]ratioRow{{"Go server / ceiling", "goserver", "ceiling-1"}, {"spawnd / ceiling", "spawnd", "ceiling-1"},
				{"spawnd / Go server", "spawnd", "goserver"}}},
		{"spawnd with limits (command_cpu_limit, command_no_new_privileges) over without",
			"The same spawnd, two services of `/bin/echo ok`: one with `-o command_cpu_limit=60 -o command_no_new_privileges=yes`, " +
				"whose commands run through spawnd-limits, and one without", "goal: at least 0.85",
			[]ratioRow{{"with limits / without", "spawnd-limits", "spawnd"}}},
		{"spawnd with a 100-pattern client_access over without",
			"The same spawnd, two services of `/bin/echo ok`: one with a `client_access` list of 100 patterns whose last admits the load generator " +
				"(checked by the listener and again by the executor), and one without", "goal: at least 0.95",
			[]ratioRow{{"100 patterns / none", "spawnd-acl", "spawnd"}}},
	} {
		var rows []ratioRow
		for _, rr := range v.rows {
			if len(b.samples[rr.key][first]) > 0 && len(b.samples[rr.base][first]) > 0 {
				rows = append(rows, rr)
			}
		}
		if len(rows) == 0 || rows[0] != v.rows[0] {
			continue
		}
		p("### %s", v.title)
		p("")
		p(v.text + ", measured in the same passes. " +
			"Cells: the ratio of the medians, then the median (min–max) of the ratios of each run's pair (" + v.goal + ").")
		p("")
		cols = []string{"conn/s"}
		for _, c := range concs {
			cols = append(cols, fmt.Sprintf("c=%d", c))
		}
		hdr(1, cols...)
		for _, rr := range rows {
			r := []string{rr.label}
			for _, c := range concs {
				with, without := b.values(rr.key, c, connPerSec), b.values(rr.base, c, connPerSec)
				if len(with) == 0 || len(without) == 0 {
					r = append(r, "–")
					continue
				}
				var pairs []float64
				for i := range min(len(with), len(without)) {
					if without[i] > 0 {
						pairs = append(pairs, with[i]/without[i])
					}
				}
				mw, _, _ := stats(with)
				mo, _, _ := stats(without)
				r = append(r, fmt.Sprintf("%.2f; %s", mw/mo, cell(pairs, 2)))
			}
			row(r...)
		}
		p("")
	}

	if len(b.samples["spawnd"][first]) > 0 {
		served := 0
		for _, c := range concs {
			for _, sm := range b.samples["spawnd"][c] {
				served += sm.res.Conns
			}
		}
		p("### spawnd memory (VmRSS, MiB)")
		p("")
		p("idle: after start-up and a short warm-up; loaded: highest seen during the runs (every 100 ms); "+
			"after: idle again after all %d measured connections.", served)
		p("")
		hdr(1, "process", "idle", "loaded", "after")
		for _, role := range []string{"executor", "listener"} {
			if m := b.rss[role]; m != nil {
				row(role, mib(m.idle), mib(m.loaded), mib(m.after))
			}
		}
		p("")
	}
	if b.strace != nil {
		b.strace.report(p)
	}
	fmt.Fprint(os.Stdout, w.String())
}

func mib(kb int) string { return fmt.Sprintf("%.1f", float64(kb)/1024) }
