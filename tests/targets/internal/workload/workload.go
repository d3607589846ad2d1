// Package workload holds the behaviours a test target can run, chosen by name
// with the -workload flag. Every target binary links all of them, so a test
// picks the transport (agent, pprof, neither) and the behaviour separately.
package workload

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

// A Workload runs forever (or until it has set up what it needs and returns).
type Workload func(n int)

var registry = map[string]Workload{}

func register(name string, w Workload) { registry[name] = w }

var (
	name *string
	size *int
)

// DefineFlags adds -workload and -n to the command line. Call it before
// flag.Parse; it runs after every init(), so the help lists all workloads.
func DefineFlags() {
	name = flag.String("workload", "idle", "behaviour to run: "+names())
	size = flag.Int("n", 100, "size parameter of the workload (goroutines, objects, ms between leaks, ...)")
}

func names() string {
	var all []string
	for n := range registry {
		all = append(all, n)
	}
	sort.Strings(all)
	return strings.Join(all, ", ")
}

// Start runs the workload selected on the command line in the background. It
// must be called after DefineFlags and flag.Parse. Setup that tests rely on
// (parked goroutines, retained objects) is finished before Start returns.
func Start() {
	w, ok := registry[*name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown workload %q (have: %s)\n", *name, names())
		os.Exit(2)
	}
	w(*size)
}
