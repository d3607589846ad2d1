// gen_profile writes a real Go heap profile with N distinct allocation stacks,
// for bench/profile_top.py. Every allocation is sampled (MemProfileRate=1), and
// allocation i is made under a call path that spells i: a little recursion
// (i%4 levels of middleware) then the base-8 digits of i/4, one step function
// per digit value, each called from its own line of a switch. So stacks are
// distinct, share root-side prefixes as real server stacks do, and repeat
// functions (recursion) the way pprof's per-sample cum dedup must handle.
package main

import (
	"flag"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
)

const digits = 7 // 8^7 paths: room for 2M distinct stacks

var retained [][]byte

func main() {
	n := flag.Int("n", 100000, "number of distinct allocation stacks")
	out := flag.String("o", "heap.pb.gz", "output heap profile")
	flag.Parse()
	runtime.MemProfileRate = 1
	for i := 0; i < *n; i++ {
		serve(i)
	}
	// A heap profile shows the state as of the last completed GC cycle and
	// publishes allocations up to two cycles late.
	runtime.GC()
	runtime.GC()
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

func serve(i int) { handle(i) }

func handle(i int) { middleware(i, i%4) }

//go:noinline
func middleware(i, depth int) {
	if depth > 0 {
		middleware(i, depth-1)
		return
	}
	route(i)
}

//go:noinline
func route(i int) { step0(uint64(i/4), digits, i) }

// next calls the step function of the lowest base-8 digit of path, or
// allocates when no digits are left.
func next(path uint64, left, i int) {
	if left == 0 {
		allocate(i)
		return
	}
	switch path % 8 {
	case 0:
		step0(path/8, left-1, i)
	case 1:
		step1(path/8, left-1, i)
	case 2:
		step2(path/8, left-1, i)
	case 3:
		step3(path/8, left-1, i)
	case 4:
		step4(path/8, left-1, i)
	case 5:
		step5(path/8, left-1, i)
	case 6:
		step6(path/8, left-1, i)
	default:
		step7(path/8, left-1, i)
	}
}

//go:noinline
func step0(path uint64, left, i int) { next(path, left, i) }

//go:noinline
func step1(path uint64, left, i int) { next(path, left, i) }

//go:noinline
func step2(path uint64, left, i int) { next(path, left, i) }

//go:noinline
func step3(path uint64, left, i int) { next(path, left, i) }

//go:noinline
func step4(path uint64, left, i int) { next(path, left, i) }

//go:noinline
func step5(path uint64, left, i int) { next(path, left, i) }

//go:noinline
func step6(path uint64, left, i int) { next(path, left, i) }

//go:noinline
func step7(path uint64, left, i int) { next(path, left, i) }

// allocate makes a block of 16..1024 bytes and keeps one in three alive, so
// the inuse and alloc sample types differ.
//
//go:noinline
func allocate(i int) {
	b := make([]byte, 16*(1+i%64))
	if i%3 == 0 {
		retained = append(retained, b)
	}
}
