package workload

import (
	"runtime"
	"sync"
	"time"
)

func init() {
	register("idle", func(int) {})
	register("park", park)
	register("retain", retain)
	register("retain-generic", func(n int) { retainGeneric(n, func(int) {}) })
	register("churn", churn)
	register("churn-spawn", churnSpawn)
	register("resize-procs", resizeProcs)
}

// parkedHere blocks forever on a channel nobody sends to; tests look for this
// function at the top of the biggest goroutine group.
func parkedHere(ch chan struct{}, started *sync.WaitGroup) {
	started.Done()
	<-ch
}

// park starts n goroutines blocked in parkedHere.
func park(n int) {
	ch := make(chan struct{})
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go parkedHere(ch, &started)
	}
	started.Wait()
}

var retained [][]byte

// retainHere allocates n blocks of 64 KiB and keeps them alive, so the heap
// profile names this function as the top in-use site.
func retainHere(n int) {
	for i := 0; i < n; i++ {
		retained = append(retained, make([]byte, 64<<10))
	}
}

func retain(n int) { retainHere(n) }

// retainGeneric keeps n blocks of 64 KiB like retainHere, from a generic
// function whose type parameter has a func shape: profiles name it
// retainGeneric[go.shape.func(int)], which go tool pprof shows without the
// parentheses.
func retainGeneric[F ~func(int)](n int, note F) {
	for i := 0; i < n; i++ {
		retained = append(retained, make([]byte, 64<<10))
		note(i)
	}
}

var sink []byte

// churnHere allocates garbage continuously; the GC reclaims it all.
func churnHere(n int) {
	for {
		for i := 0; i < n; i++ {
			sink = make([]byte, 4<<10)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func churn(n int) { go churnHere(n) }

// churnSpawn keeps n short-lived goroutines going: each allocates 16 KiB of
// garbage and ends, and another starts in its place at once. Goroutines come
// and go and the heap churns as fast as the machine lets them (one core with
// GOMAXPROCS=1): what a reader of the runtime's memory races. At most n hold a
// slot; one that gave its slot back may still be returning.
func churnSpawn(n int) {
	slots := make(chan struct{}, positive(n))
	go func() {
		for {
			slots <- struct{}{}
			go churnOnce(slots)
		}
	}()
}

func churnOnce(slots <-chan struct{}) {
	sink = make([]byte, 16<<10)
	<-slots
}

// resizeProcs parks n goroutines for ever; then, in turn, it sets GOMAXPROCS to
// 4 or 1, runs a burst of 2000 goroutines that end at once (their dead `g`s are
// left on the free lists of every P), and waits 100 ms. allp then holds other Ps
// from one moment to the next, as a reader that keeps where the Ps are must
// notice. Between bursts, runtime.NumGoroutine() is n + 2 (main and this loop).
func resizeProcs(n int) {
	park(positive(n))
	go func() {
		for procs := 4; ; procs = 5 - procs {
			runtime.GOMAXPROCS(procs)
			var done sync.WaitGroup
			done.Add(2000)
			for i := 0; i < 2000; i++ {
				go func() {
					sink = make([]byte, 1<<10)
					done.Done()
				}()
			}
			done.Wait()
			time.Sleep(100 * time.Millisecond)
		}
	}()
}
