package workload

import (
	"math/rand"
	"strconv"
)

// Heap retention: memory kept reachable for ever by a global. For both
// workloads -n is the period in milliseconds between two insertions (default
// 100: 10 per second), and each stops at retainBudget bytes.
//
//   - retain-slice: retainAppend appends a 32 KiB block to a global slice:
//     320 KiB/s at the default, about 19 MiB per minute.
//   - retain-map: cachePutNoEvict stores a 4-16 KiB value under a new key in a
//     cache that never evicts: about 100 KiB/s, 6 MiB per minute.
//
// The named functions make the allocations themselves (and are not inlined),
// so heap profiles put the growing in-use bytes at them.
//
// Each insertion is a request of a leaking service: beside what it keeps, it
// works in scratch memory that the GC takes back (requestScratch), so the GC
// runs every second or two, as in a real service, whoever watches it. (With
// retention alone, a heap growing from a few MiB doubles rarely: a 30 s watch
// saw 7 GC cycles, and under load fewer than the 6 the heap detector needs.)

const (
	requestScratch  = 1 << 20
	retainBlockSize = 32 << 10
	retainBudget    = 512 << 20
	minValueSize    = 4 << 10
	maxValueSize    = 16 << 10
)

func init() {
	register("retain-slice", func(n int) {
		every(millis(n), retainBudget/retainBlockSize, func() {
			requestWork()
			retainAppend()
		})
	})
	register("retain-map", func(n int) {
		var requests int
		every(millis(n), retainBudget/maxValueSize, func() {
			requests++
			requestWork()
			cachePutNoEvict("request-"+strconv.Itoa(requests), cacheValueSize())
		})
	})
}

var retainedBlocks [][]byte

// requestWork allocates a request's scratch memory, garbage by the next one.
//
//go:noinline
func requestWork() {
	scratch := make([]byte, requestScratch)
	fill(scratch)
	sink = scratch
}

//go:noinline
func retainAppend() {
	block := make([]byte, retainBlockSize)
	fill(block)
	retainedBlocks = append(retainedBlocks, block)
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
