// Package metrics implements the Prometheus metrics of the Portcullis
// gateway: messages by action and rule, the results of the SPF (RFC 7208),
// DKIM (RFC 6376), ARC (RFC 8617), DMARC (RFC 9989) and iprev (RFC 8601 §3)
// checks, latency histograms of the analysis, the delivery and the whole
// transaction, and the counters of the DNS cache, the evidence store, the SMTP
// listeners and the downstream connections, read when scraped.
//
// Pipeline (the Observer of package pipeline) records one observation per
// message; the Register* functions add collectors that read the other
// components' statistics at scrape time.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"portcullis/internal/dns"
	"portcullis/internal/pipeline"
	"portcullis/internal/relay"
	"portcullis/internal/smtpgw"
	"portcullis/internal/store/sqlite"
)

const namespace = "portcullis"

// latencyBuckets span 0.5 ms to 30 s.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Pipeline records the outcome of every message. It implements
// pipeline.Observer.
type Pipeline struct {
	messages    *prometheus.CounterVec
	checks      *prometheus.CounterVec
	analysis    prometheus.Histogram
	delivery    prometheus.Histogram
	total       *prometheus.HistogramVec
	evidenceErr prometheus.Counter
	internalErr prometheus.Counter
	delivered   *prometheus.CounterVec
}

// NewPipeline creates the message metrics and registers them with reg.
func NewPipeline(reg prometheus.Registerer) *Pipeline {
	p := &Pipeline{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "messages_total",
			Help: "Messages processed, by listener, action taken (deliver, quarantine, reject, defer) and the rule that decided.",
		}, []string{"listener", "action", "rule"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "check_results_total",
			Help: "Results of the authentication checks (spf, spf_helo, dkim per signature, arc, dmarc, iprev).",
		}, []string{"check", "result"}),
		analysis: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "analysis_duration_seconds",
			Help: "Time to run the checks of one message.", Buckets: latencyBuckets,
		}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "delivery_duration_seconds",
			Help: "Time the downstream took to accept or refuse one message.", Buckets: latencyBuckets,
		}),
		total: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "process_duration_seconds",
			Help: "Time from the end of DATA to the reply, by action.", Buckets: latencyBuckets,
		}, []string{"action"}),
		evidenceErr: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "evidence_errors_total",
			Help: "Evidence records that could not be stored or queued.",
		}),
		internalErr: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "internal_errors_total",
			Help: "Messages answered 451 4.3.0 because of an internal error or panic.",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "downstream_results_total",
			Help: "Downstream delivery attempts by outcome (accepted, temporary, permanent).",
		}, []string{"status"}),
	}
	reg.MustRegister(p.messages, p.checks, p.analysis, p.delivery, p.total, p.evidenceErr, p.internalErr, p.delivered)
	return p
}

// Observe implements pipeline.Observer.
func (p *Pipeline) Observe(_ *pipeline.Transaction, out *pipeline.Outcome) {
	listener := ""
	if out.Record != nil {
		listener = out.Record.Listener
	}
	p.messages.WithLabelValues(listener, string(out.Action), out.Rule).Inc()
	p.total.WithLabelValues(string(out.Action)).Observe(out.Timings.Total.Seconds())
	if out.EvidenceErr != nil {
		p.evidenceErr.Inc()
	}
	if out.Rule == pipeline.RuleInternalError {
		p.internalErr.Inc()
	}
	if out.Delivery != nil {
		p.delivered.WithLabelValues(out.Delivery.Status.String()).Inc()
		p.delivery.Observe(out.Timings.Delivery.Seconds())
	}
	v := out.Verdict
	if v == nil {
		return
	}
	p.analysis.Observe(out.Timings.Analysis.Seconds())
	p.checks.WithLabelValues("spf", orNone(string(v.SPF.Result))).Inc()
	if v.SPFHELO != nil {
		p.checks.WithLabelValues("spf_helo", orNone(string(v.SPFHELO.Result))).Inc()
	}
	if len(v.DKIM) == 0 {
		p.checks.WithLabelValues("dkim", "none").Inc()
	}
	for _, s := range v.DKIM {
		p.checks.WithLabelValues("dkim", orNone(string(s.Result))).Inc()
	}
	if v.ARC != nil {
		p.checks.WithLabelValues("arc", orNone(string(v.ARC.Status))).Inc()
	}
	p.checks.WithLabelValues("dmarc", orNone(string(v.DMARC.Result))).Inc()
	p.checks.WithLabelValues("iprev", orNone(string(v.IPRev.Result))).Inc()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// funcCollector turns a stats snapshot into metrics at scrape time.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

// RegisterDNSCache exports the counters of the DNS cache; the hit rate is
// hits / (hits + misses).
func RegisterDNSCache(reg prometheus.Registerer, c *dns.Cache) {
	hits := desc("dns_cache_hits_total", "DNS questions answered from the cache.")
	misses := desc("dns_cache_misses_total", "DNS questions sent to the resolver.")
	coalesced := desc("dns_cache_coalesced_total", "DNS questions that waited for an identical one in flight.")
	evictions := desc("dns_cache_evictions_total", "Live cache entries evicted to respect the size bound.")
	entries := desc("dns_cache_entries", "Entries held by the DNS cache.")
	reg.MustRegister(&funcCollector{descs: []*prometheus.Desc{hits, misses, coalesced, evictions, entries}, collect: func(ch chan<- prometheus.Metric) {
		s := c.Stats()
		ch <- prometheus.MustNewConstMetric(hits, prometheus.CounterValue, float64(s.Hits))
		ch <- prometheus.MustNewConstMetric(misses, prometheus.CounterValue, float64(s.Misses))
		ch <- prometheus.MustNewConstMetric(coalesced, prometheus.CounterValue, float64(s.Coalesced))
		ch <- prometheus.MustNewConstMetric(evictions, prometheus.CounterValue, float64(s.Evictions))
		ch <- prometheus.MustNewConstMetric(entries, prometheus.GaugeValue, float64(s.Entries))
	}})
}

// RegisterStore exports the group-commit counters of the SQLite store.
func RegisterStore(reg prometheus.Registerer, s *sqlite.Store) {
	batches := desc("store_batches_total", "Transactions committed by the store's writer (one fsync each).")
	evid := desc("store_evidence_committed_total", "Evidence records committed.")
	quar := desc("store_quarantine_committed_total", "Quarantine items committed.")
	failed := desc("store_failed_total", "Store operations that failed.")
	largest := desc("store_largest_batch", "The most operations one commit held.")
	queued := desc("store_queued", "Operations waiting for the writer.")
	reg.MustRegister(&funcCollector{descs: []*prometheus.Desc{batches, evid, quar, failed, largest, queued}, collect: func(ch chan<- prometheus.Metric) {
		st := s.Stats()
		ch <- prometheus.MustNewConstMetric(batches, prometheus.CounterValue, float64(st.Batches))
		ch <- prometheus.MustNewConstMetric(evid, prometheus.CounterValue, float64(st.Evidence))
		ch <- prometheus.MustNewConstMetric(quar, prometheus.CounterValue, float64(st.Quarantine))
		ch <- prometheus.MustNewConstMetric(failed, prometheus.CounterValue, float64(st.Failed))
		ch <- prometheus.MustNewConstMetric(largest, prometheus.GaugeValue, float64(st.LargestBatch))
		ch <- prometheus.MustNewConstMetric(queued, prometheus.GaugeValue, float64(st.Queued))
	}})
}

// RegisterSMTP exports the SMTP listeners' counters, by listener.
func RegisterSMTP(reg prometheus.Registerer, stats func() smtpgw.Stats) {
	type m struct {
		d *prometheus.Desc
		t prometheus.ValueType
		v func(smtpgw.ListenerStats) float64
	}
	ms := []m{
		{desc("smtp_connections_total", "SMTP connections accepted.", "listener"), prometheus.CounterValue, func(s smtpgw.ListenerStats) float64 { return float64(s.ConnectionsAccepted) }},
		{desc("smtp_connections_active", "SMTP connections open now.", "listener"), prometheus.GaugeValue, func(s smtpgw.ListenerStats) float64 { return float64(s.ConnectionsActive) }},
		{desc("smtp_connections_refused_total", "SMTP connections refused for a connection limit.", "listener"), prometheus.CounterValue, func(s smtpgw.ListenerStats) float64 { return float64(s.ConnectionsRejected) }},
		{desc("smtp_proxy_header_errors_total", "Connections closed for a bad PROXY header.", "listener"), prometheus.CounterValue, func(s smtpgw.ListenerStats) float64 { return float64(s.ProxyHeaderErrors) }},
		{desc("smtp_messages_refused_total", "Messages refused before analysis (size, line length, bare line endings).", "listener"), prometheus.CounterValue, func(s smtpgw.ListenerStats) float64 { return float64(s.MessagesRefused) }},
		{desc("smtp_rcpt_denied_total", "RCPT refused as relaying.", "listener"), prometheus.CounterValue, func(s smtpgw.ListenerStats) float64 { return float64(s.RcptDenied) }},
	}
	descs := make([]*prometheus.Desc, len(ms))
	for i := range ms {
		descs[i] = ms[i].d
	}
	reg.MustRegister(&funcCollector{descs: descs, collect: func(ch chan<- prometheus.Metric) {
		for _, l := range stats().Listeners {
			for _, x := range ms {
				ch <- prometheus.MustNewConstMetric(x.d, x.t, x.v(l), l.Name)
			}
		}
	}})
}

// RegisterRelay exports the downstream client's connection counters.
func RegisterRelay(reg prometheus.Registerer, r *relay.SMTP) {
	dials := desc("downstream_dials_total", "Downstream connections opened.")
	failures := desc("downstream_dial_failures_total", "Downstream connections that could not be opened.")
	reused := desc("downstream_reused_total", "Messages sent on a pooled downstream connection.")
	idle := desc("downstream_idle_connections", "Idle pooled downstream connections.")
	reg.MustRegister(&funcCollector{descs: []*prometheus.Desc{dials, failures, reused, idle}, collect: func(ch chan<- prometheus.Metric) {
		s := r.Stats()
		ch <- prometheus.MustNewConstMetric(dials, prometheus.CounterValue, float64(s.Dials))
		ch <- prometheus.MustNewConstMetric(failures, prometheus.CounterValue, float64(s.DialFailures))
		ch <- prometheus.MustNewConstMetric(reused, prometheus.CounterValue, float64(s.Reused))
		ch <- prometheus.MustNewConstMetric(idle, prometheus.GaugeValue, float64(s.Idle))
	}})
}

// RegisterInfo exports the configuration version as a constant 1 labelled
// with it.
func RegisterInfo(reg prometheus.Registerer, version, configVersion string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Constant 1, labelled with the program and configuration versions.",
		ConstLabels: prometheus.Labels{"version": version, "config_version": configVersion},
	})
	g.Set(1)
	reg.MustRegister(g)
}
