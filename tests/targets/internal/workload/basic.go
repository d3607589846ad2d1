package workload

import (
	"sync"
	"time"
)

func init() {
	register("idle", func(int) {})
	register("park", park)
	register("retain", retain)
	register("churn", churn)
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
