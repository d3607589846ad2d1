package workload

import "time"

// Goroutine leaks, one classic pattern per workload. For each, -n is the
// period in milliseconds between two leaked goroutines: the default 100 leaks
// 10 goroutines per second (600 per minute) and each pattern stops after
// leakLimit: maxLeakedGoroutines, or two minutes' worth of a faster leak
// (-n 1 leaks 1000 a second; leak-send, whose caller waits 10 ms for each,
// cannot go faster than 100). Every pattern blocks in a function of its own,
// so its stack group names it, and is started by a function of its own (the
// "created by" line).
//
// The channels a leaked goroutine blocks on are made per leak and reachable
// from that goroutine only, never from a global: the runtime's goroutineleak
// profile (Go 1.26 experiment, Go 1.27) can then prove the leak by GC
// reachability.

const (
	maxLeakedGoroutines = 10000
	leakGoroutinesFor   = 2 * time.Minute
)

// leakLimit is how many goroutines a pattern leaking one per period leaks before it stops.
func leakLimit(period time.Duration) int {
	if n := int(leakGoroutinesFor / period); n > maxLeakedGoroutines {
		return n
	}
	return maxLeakedGoroutines
}

// goroutineLeaks are the patterns by workload name; leak-all runs them all.
var goroutineLeaks = map[string]func(){
	"leak-send":   handleRequest,
	"leak-recv":   startCall,
	"leak-ticker": startPoller,
	"leak-select": startSubscriber,
}

func init() {
	for name, leakOnce := range goroutineLeaks {
		leakOnce := leakOnce
		register(name, func(n int) { every(millis(n), leakLimit(millis(n)), leakOnce) })
	}
	register("leak-all", func(n int) {
		for _, leakOnce := range goroutineLeaks {
			every(millis(n), leakLimit(millis(n)), leakOnce)
		}
	})
}

const (
	requestTimeout  = 10 * time.Millisecond
	slowComputation = 30 * time.Millisecond
	pollInterval    = time.Second
)

// handleRequest serves one "request": it computes the result in a goroutine
// and gives up after requestTimeout. The result channel is unbuffered, so once
// the caller has left, leakySendResult blocks forever on its send.
func handleRequest() {
	result := make(chan int)
	go leakySendResult(result)
	select {
	case <-result:
	case <-time.After(requestTimeout):
	}
}

func leakySendResult(result chan<- int) {
	time.Sleep(slowComputation) // the work outlasts the caller's patience
	result <- 42
}

// startCall waits for a reply in a goroutine, then takes an error path that
// returns without ever sending on or closing reply.
func startCall() {
	reply := make(chan int)
	go leakyAwaitReply(reply)
}

func leakyAwaitReply(reply <-chan int) {
	<-reply
}

// startPoller starts a background poller that nobody can stop: its ticker
// loop has no exit, so the goroutine and its ticker live forever.
func startPoller() {
	go leakyTickerLoop(pollInterval)
}

func leakyTickerLoop(interval time.Duration) {
	ticker := time.NewTicker(interval)
	for range ticker.C {
		// poll something; there is no way out of this loop
	}
}

// startSubscriber starts an event loop on two channels nobody else holds.
func startSubscriber() {
	events := make(chan int)
	quit := make(chan struct{})
	go leakySelectForever(events, quit)
}

func leakySelectForever(events <-chan int, quit <-chan struct{}) {
	for {
		select {
		case <-events:
		case <-quit: // the bug: this case should return
		}
	}
}
