// escapes has one heap allocation of each cause the compiler's escape analysis
// reports, each on a line marked with a comment "// escape: CAUSE", and serves
// net/http/pprof. It calls every cause's function in a loop, and the one named
// by -hot a hundred times as often, keeping the last results of each call
// alive (in a ring): the -hot site leads both the live heap and the allocation
// rate. The too-large allocation runs once, at start.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"gotop.test/targets/internal/ready"
)

type record struct {
	data [64]byte
	next *record
}

type pair struct{ a, b int }

var (
	global *record // the global the stored site writes
	sink   any     // the interface the boxed value is stored in, through keep
)

//go:noinline
func returned(n int) *record {
	r := record{} // escape: returned
	r.data[0] = byte(n)
	return &r
}

//go:noinline
func captured(n int) func() int {
	count := n // escape: captured
	return func() int { count++; return count }
}

//go:noinline
func keep(v any) { sink = v }

//go:noinline
func boxed(n int) any {
	v := pair{n, n + 1}
	keep(v) // escape: interface
	return sink
}

//go:noinline
func sized(n int) []byte {
	buf := make([]byte, n) // escape: non_constant_size
	buf[n-1] = byte(n)
	return []byte{buf[0], buf[n-1]}
}

//go:noinline
func large() byte {
	buf := make([]byte, 256<<10) // escape: too_large
	buf[len(buf)-1] = 1
	return buf[0] + buf[len(buf)-1]
}

//go:noinline
func stored(n int) *record {
	r := &record{} // escape: stored
	r.data[0] = byte(n)
	global = r
	return global
}

var causes = map[string]func(int) any{
	"returned":          func(n int) any { return returned(n) },
	"closure":           func(n int) any { return captured(n) },
	"interface":         func(n int) any { return boxed(n) },
	"non-constant size": func(n int) any { return sized(n%64 + 65) },
	"global":            func(n int) any { return stored(n) },
}

func main() {
	hot := flag.String("hot", "returned", "the cause to exercise most: returned, closure, interface, non-constant size, global")
	every := flag.Duration("every", time.Millisecond, "time between rounds of calls")
	flag.Parse()
	if _, ok := causes[*hot]; !ok {
		log.Fatalf("unknown -hot %q", *hot)
	}
	runtime.MemProfileRate = 512 // a profile that sees small sites within seconds
	large()

	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go run(*hot, *every)
	ready.Announce("", ln.Addr().String())
	log.Fatal(http.Serve(ln, mux))
}

// run calls each cause once a round, the hot one a hundred times, and keeps the
// last 1000 results of each cause alive.
func run(hot string, every time.Duration) {
	kept := map[string][]any{}
	for name := range causes {
		kept[name] = make([]any, 1000)
	}
	for n := 0; ; n++ {
		for name, cause := range causes {
			calls := 1
			if name == hot {
				calls = 100
			}
			for i := 0; i < calls; i++ {
				kept[name][(n*calls+i)%1000] = cause(n*calls + i)
			}
		}
		time.Sleep(every)
	}
}
