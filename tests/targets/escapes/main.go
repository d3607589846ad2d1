// escapes has one heap allocation of each cause the compiler's escape analysis
// reports, each on a line marked with a comment "// escape: CAUSE", and serves
// net/http/pprof. It calls every cause's function in a loop, and the one named
// by -hot a hundred times as often, keeping the results of each cause's last
// 100 rounds alive: the -hot site leads both the live heap and the allocation
// rate. The too-large allocation runs once, at start.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // on http.DefaultServeMux
	"runtime"
	"time"

	"gotop.test/targets/internal/ready"
)

// Every allocation is a few hundred bytes: they, not the rings that keep them, make the live heap.
type record struct {
	data [248]byte
	next *record
}

type block [32]int

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
	count := block{n} // escape: captured
	return func() int { count[0]++; return count[0] }
}

//go:noinline
func keep(v any) { sink = v }

//go:noinline
func boxed(n int) any {
	v := block{n, n + 1}
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
	"captured":          func(n int) any { return captured(n) },
	"interface":         func(n int) any { return boxed(n) },
	"non_constant_size": func(n int) any { return sized(n%256 + 257) },
	"stored":            func(n int) any { return stored(n) },
}

func main() {
	hot := flag.String("hot", "returned", "the cause to exercise most: returned, captured, interface, non_constant_size, stored")
	every := flag.Duration("every", 5*time.Millisecond, "time between rounds of calls")
	flag.Parse()
	if _, ok := causes[*hot]; !ok {
		log.Fatalf("unknown -hot %q", *hot)
	}
	runtime.MemProfileRate = 4096 // a profile that sees every site within seconds
	large()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go run(*hot, *every)
	ready.Announce("", ln.Addr().String())
	log.Fatal(http.Serve(ln, nil))
}

// run calls each cause once a round, the hot one a hundred times, and keeps the
// results of each cause's last 100 rounds alive.
func run(hot string, every time.Duration) {
	calls := map[string]int{}
	kept := map[string][]any{}
	for name := range causes {
		calls[name] = 1
		if name == hot {
			calls[name] = 100
		}
		kept[name] = make([]any, 100*calls[name])
	}
	for n := 0; ; n++ {
		for name, cause := range causes {
			for i := 0; i < calls[name]; i++ {
				kept[name][(n*calls[name]+i)%len(kept[name])] = cause(n*calls[name] + i)
			}
		}
		time.Sleep(every)
	}
}
