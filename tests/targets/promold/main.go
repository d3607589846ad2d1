// promold serves /metrics with client_golang v1.11: the Go collector of before
// runtime/metrics (v1.12 brought it), which calls runtime.ReadMemStats at each
// scrape and serves go_memstats_*, go_gc_duration_seconds, go_goroutines,
// go_threads and go_info; beside it the process collector (process_open_fds).
// A module of its own: its go.mod pins client_golang's version.
package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gotop.test/targets/internal/metricsonly"
)

func main() {
	metricsonly.Run(func() http.Handler {
		registry := prometheus.NewRegistry()
		registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		return promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
	})
}
