package workload

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// Helpers shared by the leaking and healthy workloads: validating -n, pacing,
// and bounds that keep a forgotten target from eating the machine.

// fail stops the target with a message on stderr; the test harness shows it.
func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "workload: "+format+"\n", args...)
	os.Exit(2)
}

// positive returns n, or stops the target when -n is not a positive number.
func positive(n int) int {
	if n <= 0 {
		fail("-n must be positive, got %d", n)
	}
	return n
}

// millis reads -n as a period in milliseconds.
func millis(n int) time.Duration { return time.Duration(positive(n)) * time.Millisecond }

// minTick is the shortest wait between two wake-ups of every: a shorter period
// is kept by several calls per wake-up.
const minTick = 10 * time.Millisecond

// every calls f once per period from a background goroutine, at most limit
// times, and returns at once. f runs on that goroutine, one call at a time.
// The calls keep to the clock, not to the ticks: those a busy machine delayed
// (or a period shorter than minTick) are made at the next wake-up, so that
// after t seconds f has run t/period times, and a leak has its stated rate.
func every(period time.Duration, limit int, f func()) {
	go func() {
		tick := period
		if tick < minTick {
			tick = minTick
		}
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		start := time.Now()
		for done := 0; done < limit; {
			<-ticker.C
			for due := int(time.Since(start) / period); done < due && done < limit; done++ {
				f()
			}
		}
	}()
}

// fdBudget is how many leaks of fdsPerLeak descriptors fit in half of the soft
// open-files limit: a leaking target stops leaking before it can no longer
// accept the connections of the monitor watching it.
func fdBudget(fdsPerLeak int) int {
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		fail("reading RLIMIT_NOFILE: %v", err)
	}
	return int(limit.Cur / 2 / uint64(fdsPerLeak))
}

// fill writes a pattern into b so that its pages are really touched: the
// process's resident memory grows with the heap, as in a real program.
func fill(b []byte) {
	for i := range b {
		b[i] = byte(i)
	}
}

// ring holds the last len(items) values pushed; pushing into a full ring
// evicts the oldest value and returns it.
type ring[T any] struct {
	items []T
	next  int
	full  bool
}

func newRing[T any](size int) *ring[T] { return &ring[T]{items: make([]T, positive(size))} }

func (r *ring[T]) push(v T) (evicted T, ok bool) {
	evicted, ok = r.items[r.next], r.full
	r.items[r.next] = v
	r.next++
	if r.next == len(r.items) {
		r.next, r.full = 0, true
	}
	return evicted, ok
}
