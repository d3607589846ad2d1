// Package metricsonly runs a target that serves Prometheus /metrics alone: no
// gops agent, no net/http/pprof, no expvar (as node_exporter does, or etcd
// without --enable-pprof). The handler comes from the caller, whose own module
// pins the client_golang version it is made with (tests/targets/prom*/).
package metricsonly

import (
	"flag"
	"log"
	"net"
	"net/http"

	"gotop.test/targets/internal/ready"
	"gotop.test/targets/internal/workload"
)

// Run parses the command line (the caller's flags defined before it), starts
// the workload and serves what `metrics()`, called after the parse, gives on /metrics.
func Run(metrics func() http.Handler) {
	workload.DefineFlags()
	httpAddr := flag.String("http", "127.0.0.1:0", "address for /metrics")
	flag.Parse()
	workload.Start()

	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics())
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	ready.Announce("", ln.Addr().String())
	log.Fatal(http.Serve(ln, mux))
}
