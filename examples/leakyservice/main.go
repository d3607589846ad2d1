// leakyservice leaks goroutines: each request asks a slow backend in a
// goroutine and gives up after a timeout, but the goroutine then blocks
// forever sending its answer on a channel nobody reads any more.
//
// gotop shows the group of goroutines blocked in fetchFromBackend growing by
// about 10 a second ("chan send"); on Go 1.27 the runtime's goroutineleak
// profile proves them leaked.
package main

import (
	"time"

	"gotop.example/demo/internal/serve"
)

// fetchFromBackend is slower than the handler is willing to wait.
func fetchFromBackend(id int, answer chan<- string) {
	time.Sleep(50 * time.Millisecond)
	answer <- "result" // blocks forever once the handler has given up
}

// handleRequest waits 20 ms for the backend, then answers without it. The
// bug: answer is unbuffered, so the late sender can never finish.
func handleRequest(id int) string {
	answer := make(chan string) // the fix: make(chan string, 1)
	go fetchFromBackend(id, answer)
	select {
	case result := <-answer:
		return result
	case <-time.After(20 * time.Millisecond):
		return "timeout"
	}
}

func main() {
	serve.Diagnostics("leakyservice")
	for id := 0; ; id++ {
		handleRequest(id)
		time.Sleep(100 * time.Millisecond)
	}
}
