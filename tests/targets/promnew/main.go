// promnew serves /metrics with the current client_golang (v1.25), whose Go
// collector reads runtime/metrics. -names chooses which names it serves:
//
//   - default: client_golang's default: the MemStats names (go_memstats_*,
//     derived from runtime/metrics), go_gc_duration_seconds, go_goroutines,
//     go_threads, go_info and, of the runtime/metrics names, only
//     go_gc_gogc_percent, go_gc_gomemlimit_bytes and go_sched_gomaxprocs_threads;
//   - both: the default and the rules collectors.MetricsGC, MetricsMemory and
//     MetricsScheduler, served on opt-in only (go_gc_heap_goal_bytes, go_gc_cycles_*,
//     go_gc_heap_*, go_memory_classes_*, go_sched_goroutines_goroutines, ...);
//   - runtime: those rules without the MemStats names
//     (WithGoCollectorMemStatsMetricsDisabled), as client_golang suggests for new code.
//
// Beside it the process collector (process_open_fds).
// A module of its own: its go.mod pins client_golang's version.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gotop.test/targets/internal/metricsonly"
)

var runtimeRules = collectors.WithGoCollectorRuntimeMetrics(
	collectors.MetricsGC, collectors.MetricsMemory, collectors.MetricsScheduler)

func main() {
	names := flag.String("names", "default", "the Go collector's names: default, both (default and runtime/metrics), runtime (runtime/metrics alone)")
	metricsonly.Run(func() http.Handler {
		var goCollector prometheus.Collector
		switch *names {
		case "default":
			goCollector = collectors.NewGoCollector()
		case "both":
			goCollector = collectors.NewGoCollector(runtimeRules)
		case "runtime":
			goCollector = collectors.NewGoCollector(runtimeRules, collectors.WithGoCollectorMemStatsMetricsDisabled())
		default:
			log.Fatalf("unknown -names %q (have: default, both, runtime)", *names)
		}
		registry := prometheus.NewRegistry()
		registry.MustRegister(goCollector, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		return promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
	})
}
