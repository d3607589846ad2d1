// pprofonly serves net/http/pprof and expvar, without the gops agent.
//
// -pprof=false serves expvar alone (like etcd without --enable-pprof);
// -vars=nested answers /debug/vars with a "memstats" nested far deeper than a
// JSON parser should follow; -log FILE appends a line for each connection and each request,
// so that tests can count what gotop asked.
package main

import (
	"bytes"
	"expvar"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"

	"gotop.test/targets/internal/ready"
	"gotop.test/targets/internal/workload"
)

const nestedDepth = 5000

func main() {
	workload.DefineFlags()
	httpAddr := flag.String("http", "127.0.0.1:0", "address for net/http/pprof and expvar")
	servePprof := flag.Bool("pprof", true, "serve net/http/pprof under /debug/pprof/")
	vars := flag.String("vars", "expvar", "what /debug/vars serves: expvar, nested (memstats nested 5000 arrays deep), none")
	logPath := flag.String("log", "", "append a line per connection (\"connect\") and per request (\"GET /path\") to this file")
	flag.Parse()
	workload.Start()

	mux := http.NewServeMux()
	if *servePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // the index and every named profile
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	switch *vars {
	case "expvar":
		mux.Handle("/debug/vars", expvar.Handler())
	case "nested":
		mux.HandleFunc("/debug/vars", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Write(append([]byte(`{"memstats": `), bytes.Repeat([]byte("["), nestedDepth)...))
		})
	case "none":
	default:
		log.Fatalf("unknown -vars %q (have: expvar, nested, none)", *vars)
	}

	server := &http.Server{Handler: mux}
	if *logPath != "" {
		requests := openLog(*logPath)
		server.ConnState = func(c net.Conn, state http.ConnState) {
			if state == http.StateNew {
				requests.line("connect")
			}
		}
		server.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.line(r.Method + " " + r.URL.RequestURI())
			mux.ServeHTTP(w, r)
		})
	}

	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	ready.Announce("", ln.Addr().String())
	log.Fatal(server.Serve(ln))
}

type requestLog struct {
	mu   sync.Mutex
	file *os.File
}

func openLog(path string) *requestLog {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	return &requestLog{file: f}
}

func (l *requestLog) line(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.file.WriteString(text + "\n")
}
