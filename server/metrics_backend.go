package server

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/noxrunner/nox/driver"
)

// backendCollector reports a driver.Statter's figures at each scrape.
type backendCollector struct {
	s   driver.Statter
	log *slog.Logger

	sandboxes, processes, poolReady, poolCapacity, reaped *prometheus.Desc
	cpu, memory, pids, storage                            *prometheus.Desc
}

func newBackendCollector(s driver.Statter, log *slog.Logger) *backendCollector {
	session := []string{"session"}
	return &backendCollector{
		s: s, log: log,
		sandboxes:    prometheus.NewDesc("nox_sandboxes", "Sandboxes that exist.", nil, nil),
		processes:    prometheus.NewDesc("nox_processes", "Processes of the processes extension running.", nil, nil),
		poolReady:    prometheus.NewDesc("nox_create_pool_ready", "Environments of the create pool ready for new sandboxes.", nil, nil),
		poolCapacity: prometheus.NewDesc("nox_create_pool_capacity", "The size of the create pool (0: none).", nil, nil),
		reaped:       prometheus.NewDesc("nox_sandboxes_reaped_total", "Sandboxes removed on expiry since the backend started.", nil, nil),
		cpu:          prometheus.NewDesc("nox_sandbox_cpu_seconds_total", "CPU time a running sandbox's processes used since its environment started.", session, nil),
		memory:       prometheus.NewDesc("nox_sandbox_memory_bytes", "Memory a running sandbox uses now.", session, nil),
		pids:         prometheus.NewDesc("nox_sandbox_pids", "Processes and threads a running sandbox runs now.", session, nil),
		storage:      prometheus.NewDesc("nox_sandbox_storage_bytes", "Bytes a running sandbox's files take in its storage.", session, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *backendCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sandboxes, c.processes, c.poolReady, c.poolCapacity, c.reaped, c.cpu, c.memory, c.pids, c.storage} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it asks the backend, within
// statsTimeout. A failure is logged and the backend's figures are left
// out of that scrape; the server's own are still served.
func (c *backendCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := c.s.Stats(ctx)
	if err != nil {
		c.log.Warn("metrics: backend stats", "err", err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.sandboxes, float64(st.Sandboxes))
	gauge(c.processes, float64(st.Processes))
	gauge(c.poolReady, float64(st.PoolReady))
	gauge(c.poolCapacity, float64(st.PoolCapacity))
	ch <- prometheus.MustNewConstMetric(c.reaped, prometheus.CounterValue, float64(st.Reaped))
	for id, u := range st.Usage {
		if u.CPUSeconds >= 0 {
			ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, u.CPUSeconds, id)
		}
		if u.MemoryBytes >= 0 {
			gauge(c.memory, float64(u.MemoryBytes), id)
		}
		if u.Pids >= 0 {
			gauge(c.pids, float64(u.Pids), id)
		}
		if u.StorageBytes >= 0 {
			gauge(c.storage, float64(u.StorageBytes), id)
		}
	}
}
