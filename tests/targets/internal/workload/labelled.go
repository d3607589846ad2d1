package workload

import (
	"context"
	"runtime/pprof"
	"sync"
)

func init() { register("labelled", labelled) }

// labelledHere blocks forever like parkedHere, but its goroutines carry pprof
// labels: goroutine?debug=1 prints them as "# labels:", and Go >= 1.27 also
// prints them in the debug=2 goroutine headers (one value needs quoting there).
func labelledHere(ch chan struct{}, started *sync.WaitGroup) {
	started.Done()
	<-ch
}

// labelled starts n goroutines blocked in labelledHere under pprof labels.
func labelled(n int) {
	ch := make(chan struct{})
	var started sync.WaitGroup
	started.Add(n)
	labels := pprof.Labels("role", "worker", "note", "needs quoting: yes")
	pprof.Do(context.Background(), labels, func(context.Context) {
		for i := 0; i < n; i++ {
			go labelledHere(ch, &started)
		}
	})
	started.Wait()
}
