package workload

import (
	"hash/crc32"
	"math"
	"math/rand"
	"strconv"
	"time"
)

// Healthy busy workloads: they allocate, spawn goroutines and fill caches, but
// nothing grows without bound. A leak detector must stay quiet on them.
//
//   - healthy-churn: every 100 ms, churnBurst builds a working set of n blocks
//     of 32 KiB and drops it (default 3.2 MiB per burst, 32 MiB/s of garbage).
//   - healthy-pool: n poolWorker goroutines (default 100) take jobs from a
//     channel fed every 5 ms; each job checksums 4 KiB and waits 20 ms. The
//     goroutine count is constant, most workers waiting in chan receive.
//   - healthy-ramp: a pool that grows to n poolWorker goroutines (default 100),
//     one every 100 ms, fed as healthy-pool's is; then it stays at n.
//   - healthy-spawn: n goroutines per second (default 100) run shortLivedTask,
//     each waiting 50-500 ms for a reply that does come; about 28 are alive
//     at any time at the default rate.
//   - healthy-cache: cachePutEvict stores a 4-16 KiB value every 50 ms in a
//     cache bounded at n entries (default 100, about 1 MiB) that evicts the
//     oldest: the heap grows for n x 50 ms (5 s) and then stays flat.

const (
	forever          = math.MaxInt
	churnBlockSize   = 32 << 10
	churnPeriod      = 100 * time.Millisecond
	jobPeriod        = 5 * time.Millisecond
	jobSize          = 4 << 10
	jobWait          = 20 * time.Millisecond
	minTaskLife      = 50  // milliseconds
	maxTaskLife      = 500 // milliseconds
	cachePutInterval = 50 * time.Millisecond
	rampPeriod       = 100 * time.Millisecond
)

func init() {
	register("healthy-churn", func(n int) {
		blocks := positive(n)
		every(churnPeriod, forever, func() { churnBurst(blocks) })
	})
	register("healthy-pool", healthyPool)
	register("healthy-ramp", func(n int) {
		jobs := make(chan []byte)
		every(rampPeriod, positive(n), func() { go poolWorker(jobs) })
		go feedJobs(jobs)
	})
	register("healthy-spawn", func(n int) { every(time.Second/time.Duration(positive(n)), forever, spawnTask) })
	register("healthy-cache", func(n int) {
		cache := newBoundedCache(n)
		var requests int
		every(cachePutInterval, forever, func() {
			requests++
			cache.cachePutEvict("request-"+strconv.Itoa(requests), cacheValueSize())
		})
	})
}

// churnWorkingSet is global so that the blocks are heap-allocated; it is
// dropped at the end of every burst.
var churnWorkingSet [][]byte

func churnBurst(n int) {
	churnWorkingSet = make([][]byte, n)
	for i := range churnWorkingSet {
		churnWorkingSet[i] = make([]byte, churnBlockSize)
	}
	churnWorkingSet = nil
}

func healthyPool(n int) {
	workers := positive(n)
	jobs := make(chan []byte)
	for i := 0; i < workers; i++ {
		go poolWorker(jobs)
	}
	go feedJobs(jobs)
}

func feedJobs(jobs chan<- []byte) {
	ticker := time.NewTicker(jobPeriod)
	for range ticker.C {
		jobs <- make([]byte, jobSize)
	}
}

func poolWorker(jobs <-chan []byte) {
	for job := range jobs {
		crc32.ChecksumIEEE(job)
		time.Sleep(jobWait)
	}
}

// spawnTask starts a goroutine that waits for a reply; a timer delivers the
// reply after a random 50-500 ms, and the goroutine ends.
func spawnTask() {
	life := time.Duration(minTaskLife+rand.Intn(maxTaskLife-minTaskLife+1)) * time.Millisecond
	reply := make(chan struct{})
	time.AfterFunc(life, func() { close(reply) })
	go shortLivedTask(reply)
}

func shortLivedTask(reply <-chan struct{}) {
	<-reply
}

// boundedCache holds at most a fixed number of entries and evicts the oldest.
type boundedCache struct {
	entries map[string][]byte
	keys    *ring[string]
}

func newBoundedCache(size int) *boundedCache {
	return &boundedCache{entries: map[string][]byte{}, keys: newRing[string](size)}
}

//go:noinline
func (c *boundedCache) cachePutEvict(key string, size int) {
	value := make([]byte, size)
	fill(value)
	c.entries[key] = value
	if oldest, evicted := c.keys.push(key); evicted {
		delete(c.entries, oldest)
	}
}
