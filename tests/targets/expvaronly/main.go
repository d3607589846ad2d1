// expvaronly serves expvar's /debug/vars alone: no net/http/pprof, no gops agent
// (as etcd does without --enable-pprof).
package main

import (
	_ "expvar"
	"flag"
	"log"
	"net"
	"net/http"

	"gotop.test/targets/internal/ready"
	"gotop.test/targets/internal/workload"
)

func main() {
	workload.DefineFlags()
	httpAddr := flag.String("http", "127.0.0.1:0", "address for expvar")
	flag.Parse()
	workload.Start()

	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	ready.Announce("", ln.Addr().String())
	log.Fatal(http.Serve(ln, nil))
}
