// workerpool is healthy and busy: a fixed pool of workers processes a steady
// stream of jobs, allocating garbage the GC reclaims.
//
// gotop shows a constant number of goroutines, a heap that saws up and down
// around a flat level, and no leak.
package main

import (
	"crypto/sha256"
	"time"

	"gotop.example/demo/internal/serve"
)

const workers = 8

// work hashes a fresh buffer: short-lived garbage.
func work(job int) [32]byte {
	buf := make([]byte, 64<<10)
	buf[0] = byte(job)
	return sha256.Sum256(buf)
}

func main() {
	serve.Diagnostics("workerpool")
	jobs := make(chan int)
	for w := 0; w < workers; w++ {
		go func() {
			for job := range jobs {
				work(job)
			}
		}()
	}
	for job := 0; ; job++ {
		jobs <- job
		time.Sleep(2 * time.Millisecond)
	}
}
