// Package serve starts what makes a Go program visible to gotop: the gops
// agent and net/http/pprof (with expvar) on loopback.
package serve

import (
	_ "expvar"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"

	"github.com/google/gops/agent"
)

// Diagnostics starts the gops agent and an HTTP server for /debug/pprof/ and
// /debug/vars on a free loopback port, and logs where they are.
func Diagnostics(name string) {
	if err := agent.Listen(agent.Options{}); err != nil {
		log.Fatalf("%s: gops agent: %v", name, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	log.Printf("%s: pprof at http://%s/debug/pprof/", name, ln.Addr())
	go func() { log.Fatal(http.Serve(ln, nil)) }()
}
