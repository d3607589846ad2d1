// cache retains heap: every response is cached under a key that is never
// asked for again, and nothing is ever evicted.
//
// gotop shows the live heap rising from one GC to the next, and the heap view
// names storeResponse as the site that keeps growing.
package main

import (
	"fmt"
	"time"

	"gotop.example/demo/internal/serve"
)

var responses = map[string][]byte{}

// storeResponse keeps a copy of every response; the fix is a bounded cache.
func storeResponse(key string, size int) {
	responses[key] = make([]byte, size)
}

func main() {
	serve.Diagnostics("cache")
	for i := 0; ; i++ {
		storeResponse(fmt.Sprintf("request-%d", i), 8<<10+i%4096)
		time.Sleep(50 * time.Millisecond)
	}
}
