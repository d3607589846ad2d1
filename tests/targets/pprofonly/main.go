// pprofonly serves net/http/pprof and expvar, without the gops agent.
package main

import (
	_ "expvar"
	"flag"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"

	"gotop.test/targets/internal/ready"
	"gotop.test/targets/internal/workload"
)

func main() {
	workload.DefineFlags()
	httpAddr := flag.String("http", "127.0.0.1:0", "address for net/http/pprof and expvar")
	flag.Parse()
	workload.Start()

	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	ready.Announce("", ln.Addr().String())
	log.Fatal(http.Serve(ln, nil))
}
