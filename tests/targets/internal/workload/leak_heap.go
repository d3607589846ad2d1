package workload

import (
	"math/rand"
	"strconv"
	"time"
)

// Heap retention: memory kept reachable for ever by a global. For the first
// two workloads -n is the period in milliseconds between two insertions
// (default 100: 10 per second), and each stops at retainBudget bytes.
//
//   - retain-slice: retainAppend appends a 32 KiB block to a global slice:
//     320 KiB/s at the default, about 19 MiB per minute.
//   - retain-map: cachePutNoEvict stores a 4-16 KiB value under a new key in a
//     cache that never evicts: about 100 KiB/s, 6 MiB per minute.
//
//   - leak-heap: a leak of a known rate, -n bytes per second: ten times a
//     second a request keeps a tenth of that in a block leakHeapBlock
//     appends to a global slice, and makes and drops a 100 KiB response
//     (1 MiB/s of garbage: the GC runs however slow the leak). It stops after
//     leakHeapFor, so that a forgotten fast one cannot eat the machine.
//
// The named functions make the allocations themselves (and are not inlined),
// so heap profiles put the growing in-use bytes at them.

const (
	retainBlockSize = 32 << 10
	retainBudget    = 512 << 20
	minValueSize    = 4 << 10
	maxValueSize    = 16 << 10
	leakHeapTick    = 100 * time.Millisecond
	leakHeapFor     = 2 * time.Minute
	responseSize    = 100 << 10
)

func init() {
	register("retain-slice", func(n int) {
		every(millis(n), retainBudget/retainBlockSize, retainAppend)
	})
	register("retain-map", func(n int) {
		var requests int
		every(millis(n), retainBudget/maxValueSize, func() {
			requests++
			cachePutNoEvict("request-"+strconv.Itoa(requests), cacheValueSize())
		})
	})
	register("leak-heap", func(n int) {
		perTick := positive(n) / int(time.Second/leakHeapTick)
		if perTick == 0 {
			fail("leak-heap: -n is bytes per second, at least %d", time.Second/leakHeapTick)
		}
		every(leakHeapTick, int(leakHeapFor/leakHeapTick), func() {
			leakHeapBlock(perTick)
			respond()
		})
	})
}

var retainedBlocks [][]byte

//go:noinline
func retainAppend() {
	block := make([]byte, retainBlockSize)
	fill(block)
	retainedBlocks = append(retainedBlocks, block)
}

var leakedHeapBlocks [][]byte

//go:noinline
func leakHeapBlock(size int) {
	block := make([]byte, size)
	fill(block)
	leakedHeapBlocks = append(leakedHeapBlocks, block)
}

// response is global so that it is heap-allocated; it is dropped at once.
var response []byte

func respond() {
	response = make([]byte, responseSize)
	response = nil
}

var noEvictCache = map[string][]byte{}

//go:noinline
func cachePutNoEvict(key string, size int) {
	value := make([]byte, size)
	fill(value)
	noEvictCache[key] = value
}

// cacheValueSize is the size of one cached value, spread over [4 KiB, 16 KiB].
func cacheValueSize() int { return minValueSize + rand.Intn(maxValueSize-minValueSize+1) }
