// plain is a Go program with neither the gops agent nor net/http/pprof.
package main

import (
	"flag"
	"time"

	"gotop.test/targets/internal/ready"
	"gotop.test/targets/internal/workload"
)

func main() {
	workload.DefineFlags()
	flag.Parse()
	workload.Start()
	ready.Announce("", "")
	for {
		time.Sleep(time.Hour) // a blocked select{} alone would be a deadlock
	}
}
