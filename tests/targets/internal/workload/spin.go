package workload

import "expvar"

// spin: one goroutine does steady, allocation-free CPU work and counts its
// completed operations in the expvar "spin_ops". bench/tui_cost.py reads the
// counter at the edges of equal windows (with GOMAXPROCS=1) to measure the
// throughput a monitor takes from the process it watches. One operation is
// n thousand rounds of an xorshift mix (-n 100: about a tenth of a millisecond).

func init() {
	register("spin", func(n int) {
		rounds := positive(n) * 1000
		ops := expvar.NewInt("spin_ops") // created here so other workloads' /debug/vars stay unchanged
		go spinHere(rounds, ops)
	})
}

// spinSink keeps the result observable so the compiler cannot drop the loop.
var spinSink uint64

func spinHere(rounds int, ops *expvar.Int) {
	x := uint64(88172645463325252)
	for {
		for i := 0; i < rounds; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		spinSink = x
		ops.Add(1)
	}
}
