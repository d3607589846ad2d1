package workload

// recurse: one goroutine burns CPU forever through call shapes that a profile
// reader must count right (tests/test_profile.py compares with go tool pprof):
//   - direct recursion (recurseFib): cum once per sample, self-edges skipped;
//   - mutual recursion (recursePing <-> recursePong);
//   - a small function (recurseSquare) inlined into recurseMix, which calls it
//     directly, and a real frame under recurseMixIndirect, which calls it
//     through a function value: pprof then marks it "(partial-inline)".

func init() { register("recurse", func(n int) { go recurseForever(positive(n)) }) }

var (
	recurseSink     int
	recurseSquareFn = recurseSquare // called through this, recurseSquare is not inlined
)

// recurseForever spends roughly a third of its time in each shape; n scales
// the recursion depth.
func recurseForever(depth int) {
	for {
		recurseSink += recurseFib(depth)
		recurseSink += recursePing(depth)
		recurseSink += recurseMix(depth * 2000)
		recurseSink += recurseMixIndirect(depth * 2000)
	}
}

func recurseFib(n int) int {
	if n < 2 {
		return n
	}
	return recurseFib(n-1) + recurseFib(n-2)
}

func recursePing(n int) int {
	if n == 0 {
		return recurseSpin(3000)
	}
	return recursePong(n - 1)
}

func recursePong(n int) int {
	if n == 0 {
		return recurseSpin(4000)
	}
	return recursePing(n - 1)
}

func recurseSpin(rounds int) int {
	x := uint64(88172645463325252) // uint64: the targets also build for 32-bit GOARCH
	for i := 0; i < rounds; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return int(x)
}

func recurseMix(rounds int) int {
	total := 0
	for i := 0; i < rounds; i++ {
		total += recurseSquare(i + total)
	}
	return total
}

func recurseMixIndirect(rounds int) int {
	total := 0
	for i := 0; i < rounds; i++ {
		total += recurseSquareFn(i + total)
	}
	return total
}

func recurseSquare(x int) int { return x*x ^ x>>3 }
