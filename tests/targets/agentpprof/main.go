// agentpprof runs the gops agent and serves net/http/pprof and expvar.
package main

import (
	_ "expvar"
	"flag"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"

	"github.com/google/gops/agent"

	"gotop.test/targets/internal/ready"
	"gotop.test/targets/internal/workload"
)

func main() {
	workload.DefineFlags()
	httpAddr := flag.String("http", "127.0.0.1:0", "address for net/http/pprof and expvar")
	agentAddr := flag.String("agent", "", "address for the gops agent (default: its own)")
	flag.Parse()
	workload.Start()

	if err := agent.Listen(agent.Options{Addr: *agentAddr}); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	ready.Announce(agentListenAddr(), ln.Addr().String())
	log.Fatal(http.Serve(ln, nil))
}
