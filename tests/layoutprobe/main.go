// layoutprobe is the program tests/gen_layouts.py builds with each Go release to
// read the runtime's struct layouts from its DWARF. Its own code does not matter:
// the runtime types and variables are in every Go binary; it only runs a GC and a
// goroutine so that a build is a typical one.
package main

import (
	"fmt"
	"runtime"
)

func main() {
	done := make(chan struct{})
	go func() { close(done) }()
	<-done
	runtime.GC()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	fmt.Println(stats.NumGC, runtime.NumGoroutine())
}
