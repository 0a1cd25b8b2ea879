package main

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
	"golang.org/x/exp/trace"
)

// schedStats is what an execution trace says about goroutine scheduling.
type schedStats struct {
	Span      time.Duration // first to last event
	Unblocks  int           // goroutines made runnable after waiting (Waiting -> Runnable)
	Creations int           // goroutines created (NotExist -> Runnable)
	// Created splits Creations by the category of what the new goroutines
	// run (their start stack, then their creator's), with their start
	// functions as the top functions.
	Created *attribution
	// Latencies are the times goroutines spent runnable before running
	// (any transition into Runnable until the next one out of it, if longer
	// than 0), for goroutines that had already run in the trace, as `go
	// tool trace -pprof=sched` counts them: wakes and preemptions, not the
	// wait of a new goroutine for its first run. Sorted.
	Latencies []time.Duration
	// WakeLatencies are the subset that began with an unblock (Waiting ->
	// Runnable): from being woken to running. Sorted.
	WakeLatencies []time.Duration
	// Wakes splits Unblocks by where the woken goroutine had blocked: the
	// category of its stack when it started waiting, and that stack's
	// deciding function (see classify).
	Wakes *attribution
	// Reasons counts Unblocks by the reason the goroutine had blocked
	// (the runtime's words: "chan receive", "select", "network", ...).
	Reasons map[string]int
}

// readSchedTrace reads an execution trace (runtime/trace's format, Go 1.22
// and later) and counts wakes, creations and scheduling latency.
func readSchedTrace(r io.Reader) (*schedStats, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	st := &schedStats{Wakes: &attribution{Unit: "wakes", Cats: map[string]*catTotal{}},
		Created: &attribution{Unit: "goroutines", Cats: map[string]*catTotal{}}, Reasons: map[string]int{}}
	// waitingIn is where each waiting goroutine blocked, classified;
	// pending counts wakes of goroutines whose blocking stack the trace did
	// not show (they blocked before it began: the trace announces them
	// "Undetermined -> Waiting" without a stack); those wakes are charged to
	// where the goroutine blocks next, or left unknown if it never does.
	waitingIn := map[trace.GoID]waitSite{}
	pending := map[trace.GoID]int64{}
	sites := map[trace.Stack]waitSite{} // memo by stack
	site := func(stk trace.Stack, reason string) waitSite {
		w, ok := sites[stk]
		if !ok {
			var frames []string
			for f := range stk.Frames() {
				frames = append(frames, f.Func)
			}
			w.cat, w.by, w.via = classify(frames)
			sites[stk] = w
		}
		w.reason = reason
		if w.reason == "" {
			w.reason = "(none given)"
		}
		return w
	}
	type runnable struct {
		since trace.Time
		woken bool // became runnable by an unblock
	}
	runnableSince := map[trace.GoID]runnable{} // goroutines runnable and not yet running
	ran := map[trace.GoID]bool{}               // goroutines seen running
	var first, last trace.Time
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if first == 0 {
			first = ev.Time()
		}
		last = ev.Time()
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		tx := ev.StateTransition()
		if tx.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		id := tx.Resource.Goroutine()
		from, to := tx.Goroutine()

		// Scheduling latency, counted as go tool trace counts it.
		if r, ok := runnableSince[id]; ok && to != trace.GoRunnable {
			if d := ev.Time().Sub(r.since); d > 0 && ran[id] {
				st.Latencies = append(st.Latencies, d)
				if r.woken {
					st.WakeLatencies = append(st.WakeLatencies, d)
				}
			}
			delete(runnableSince, id)
		} else if !ok && to == trace.GoRunnable {
			runnableSince[id] = runnable{ev.Time(), from == trace.GoWaiting}
		}
		if to == trace.GoRunning {
			ran[id] = true
		}

		switch {
		case to == trace.GoWaiting:
			stk := tx.Stack
			if stk == trace.NoStack {
				stk = ev.Stack()
			}
			if stk == trace.NoStack && (from == trace.GoUndetermined || from == trace.GoWaiting) {
				// A generation's status report (Undetermined or Waiting ->
				// Waiting): the goroutine still waits where it was seen
				// blocking, if it was.
				break
			}
			w := site(stk, tx.Reason)
			waitingIn[id] = w
			if n := pending[id]; n > 0 {
				st.wake(w, n)
				delete(pending, id)
			}
		case from == trace.GoWaiting && to == trace.GoRunnable:
			st.Unblocks++
			if w, ok := waitingIn[id]; ok {
				st.wake(w, 1)
				delete(waitingIn, id)
			} else {
				pending[id]++
			}
		case from == trace.GoNotExist && to == trace.GoRunnable:
			st.Creations++
			// Charged to what the new goroutine runs (its start stack),
			// else to its creator: a time.AfterFunc callback is created by
			// the runtime's timers but runs its owner's code.
			var frames []string
			start := "(unknown)"
			for f := range tx.Stack.Frames() {
				frames = append(frames, f.Func)
				start = f.Func // the outermost frame: the goroutine's function
			}
			for f := range ev.Stack().Frames() {
				frames = append(frames, f.Func)
			}
			cat, _, via := classify(frames)
			st.Created.add(cat, start, 1, 1, via)
		}
	}
	for _, n := range pending {
		st.wake(waitSite{cat: "(unknown: blocked before the trace began)", by: "(unknown)", reason: "(unknown)"}, n)
	}
	st.Span = last.Sub(first)
	slices.Sort(st.Latencies)
	slices.Sort(st.WakeLatencies)
	return st, nil
}

// waitSite is where a goroutine blocked: its stack's category, deciding
// function and whether it passes through this module, and the reason the
// runtime gave.
type waitSite struct {
	cat, by, reason string
	via             bool
}

// wake counts n wakes of goroutines that had blocked at w.
func (st *schedStats) wake(w waitSite, n int64) {
	st.Wakes.add(w.cat, w.by, n, n, w.via)
	st.Reasons[w.reason] += int(n)
}

// add counts v (from samples samples) for a stack of category cat decided
// by function by.
func (a *attribution) add(cat, by string, v, samples int64, viaModule bool) {
	ct := a.Cats[cat]
	if ct == nil {
		ct = &catTotal{Category: cat, byFunc: map[string]int64{}}
		a.Cats[cat] = ct
	}
	ct.Value += v
	ct.Samples += samples
	if viaModule {
		ct.ViaModule += v
	}
	ct.byFunc[by] += v
	a.Total += v
}

// latencyQuantile returns the q-quantile (0..1) of sorted durations.
func latencyQuantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// latencyTotal is the sum of the latencies.
func (st *schedStats) latencyTotal() time.Duration {
	var t time.Duration
	for _, d := range st.Latencies {
		t += d
	}
	return t
}

// goSchedProfile runs `go tool trace -pprof=sched` on a trace file and
// returns the number of runnable intervals and their total delay, to
// cross-check readSchedTrace with the Go team's own reading.
func goSchedProfile(traceFile string) (count int64, delay time.Duration, err error) {
	out, err := exec.Command("go", "tool", "trace", "-pprof=sched", traceFile).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, 0, fmt.Errorf("go tool trace -pprof=sched: %v: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return 0, 0, fmt.Errorf("go tool trace -pprof=sched: %w", err)
	}
	p, err := profile.ParseData(out)
	if err != nil {
		return 0, 0, fmt.Errorf("go tool trace -pprof=sched output: %w", err)
	}
	ci, di := -1, -1
	for i, s := range p.SampleType {
		switch s.Unit {
		case "count":
			ci = i
		case "nanoseconds":
			di = i
		}
	}
	if ci < 0 || di < 0 {
		return 0, 0, fmt.Errorf("go tool trace -pprof=sched: unexpected sample types %v", p.SampleType)
	}
	for _, s := range p.Sample {
		count += s.Value[ci]
		delay += time.Duration(s.Value[di])
	}
	return count, delay, nil
}

// schedTable renders the trace's numbers against the events the client
// received: goroutines woken per delivered event, scheduling latency, and
// where the woken goroutines had been waiting. eventsPerSec is the client's
// delivery rate in the window (0 if unknown); cross is the go tool trace
// cross-check (nil if it failed, with crossErr).
func schedTable(st *schedStats, eventsPerSec float64, cross *[2]int64, crossErr error) string {
	var b strings.Builder
	secs := st.Span.Seconds()
	rate := func(n int64) float64 { return float64(n) / max(secs, 1e-9) }
	fmt.Fprintf(&b, "Execution trace: %.2f s.\n\n| | value |\n|---|---:|\n", secs)
	fmt.Fprintf(&b, "| events delivered per second (client, whole window) | %.0f |\n", eventsPerSec)
	fmt.Fprintf(&b, "| goroutine unblocks per second | %.0f |\n", rate(int64(st.Unblocks)))
	if eventsPerSec > 0 {
		fmt.Fprintf(&b, "| **goroutines woken per delivered event** | **%.2f** |\n", rate(int64(st.Unblocks))/eventsPerSec)
	}
	fmt.Fprintf(&b, "| goroutines created per second | %.0f |\n", rate(int64(st.Creations)))
	fmt.Fprintf(&b, "| scheduler latency (runnable → running) p50 / p99 / max | %s / %s / %s |\n",
		profDur(latencyQuantile(st.Latencies, 0.5)), profDur(latencyQuantile(st.Latencies, 0.99)),
		profDur(latencyQuantile(st.Latencies, 1)))
	fmt.Fprintf(&b, "| of woken goroutines (unblocked → running) p50 / p99 / max | %s / %s / %s |\n",
		profDur(latencyQuantile(st.WakeLatencies, 0.5)), profDur(latencyQuantile(st.WakeLatencies, 0.99)),
		profDur(latencyQuantile(st.WakeLatencies, 1)))
	n := int64(len(st.Latencies))
	fmt.Fprintf(&b, "| runnable intervals, total delay (this reader) | %d, %s |\n", n, profDur(st.latencyTotal()))
	if cross != nil {
		fmt.Fprintf(&b, "| same, `go tool trace -pprof=sched` | %d, %s |\n", cross[0], profDur(time.Duration(cross[1])))
	} else if crossErr != nil {
		fmt.Fprintf(&b, "| same, `go tool trace -pprof=sched` | failed: %s |\n", strings.ReplaceAll(crossErr.Error(), "|", "/"))
	}
	b.WriteString("\nWakes by where the woken goroutine was waiting (the category of its stack when it blocked):\n\n")
	b.WriteString("| waiting in | wakes per second | per delivered event | % | top functions (wakes/s) |\n|---|---:|---:|---:|---|\n")
	cats := slices.Clone(categoryOrder)
	for _, a := range []*attribution{st.Wakes, st.Created} {
		for c := range a.Cats {
			if !slices.Contains(cats, c) {
				cats = append(cats, c)
			}
		}
	}
	for _, cat := range cats {
		ct := st.Wakes.Cats[cat]
		if ct == nil || ct.Value == 0 {
			continue
		}
		per := "—"
		if eventsPerSec > 0 {
			per = fmt.Sprintf("%.2f", rate(ct.Value)/eventsPerSec)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %.1f%% | %s |\n", cat, rate(ct.Value), per, profPct(ct.Value, st.Wakes.Total),
			ct.topCell(3, func(v int64) string { return fmt.Sprintf("%.0f", rate(v)) }))
	}
	b.WriteString("\nGoroutines created, by the category of what they run (else of their creator):\n\n")
	b.WriteString("| running | per second | per delivered event | top start functions (per second) |\n|---|---:|---:|---|\n")
	for _, cat := range cats {
		ct := st.Created.Cats[cat]
		if ct == nil || ct.Value == 0 {
			continue
		}
		per := "—"
		if eventsPerSec > 0 {
			per = fmt.Sprintf("%.2f", rate(ct.Value)/eventsPerSec)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s |\n", cat, rate(ct.Value), per,
			ct.topCell(3, func(v int64) string { return fmt.Sprintf("%.0f", rate(v)) }))
	}
	reasons := make([]string, 0, len(st.Reasons))
	for r := range st.Reasons {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(x, y string) int { return st.Reasons[y] - st.Reasons[x] })
	var parts []string
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%s %.0f/s", r, rate(int64(st.Reasons[r]))))
	}
	fmt.Fprintf(&b, "\nBlocking reasons of the woken goroutines: %s.\n", strings.Join(parts, ", "))
	return b.String()
}

// profDur prints a duration with three significant digits.
func profDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3g s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3g ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.3g µs", float64(d)/1e3)
	}
}
