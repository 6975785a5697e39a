package metrics_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"portcullis/internal/analysis"
	"portcullis/internal/dmarc"
	"portcullis/internal/evidence"
	"portcullis/internal/metrics"
	"portcullis/internal/pipeline"
	"portcullis/internal/relay"
	"portcullis/internal/spf"
)

func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if match(m, labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func match(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok && v == lp.GetValue() {
			n++
		}
	}
	return n == len(labels)
}

func TestObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := metrics.NewPipeline(reg)
	v := &analysis.Verdict{ClientIP: netip.MustParseAddr("192.0.2.1"), SPF: spf.Result{Result: spf.Pass}, DMARC: dmarc.Result{Result: dmarc.Pass}}
	out := &pipeline.Outcome{
		Action: evidence.Deliver, Rule: "dmarc-pass", Verdict: v,
		Record:   &evidence.Record{Listener: "mx"},
		Delivery: &relay.Result{Status: relay.StatusAccepted},
		Timings:  pipeline.Timings{Analysis: time.Millisecond, Delivery: 2 * time.Millisecond, Total: 4 * time.Millisecond},
	}
	p.Observe(&pipeline.Transaction{}, out)
	p.Observe(&pipeline.Transaction{}, &pipeline.Outcome{Action: evidence.Defer, Rule: pipeline.RuleInternalError, Record: &evidence.Record{Listener: "mx"}})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"portcullis_messages_total", map[string]string{"listener": "mx", "action": "deliver", "rule": "dmarc-pass"}, 1},
		{"portcullis_messages_total", map[string]string{"listener": "mx", "action": "defer", "rule": "internal-error"}, 1},
		{"portcullis_check_results_total", map[string]string{"check": "spf", "result": "pass"}, 1},
		{"portcullis_check_results_total", map[string]string{"check": "dmarc", "result": "pass"}, 1},
		{"portcullis_check_results_total", map[string]string{"check": "dkim", "result": "none"}, 1},
		{"portcullis_internal_errors_total", nil, 1},
		{"portcullis_downstream_results_total", map[string]string{"status": "accepted"}, 1},
		{"portcullis_process_duration_seconds", map[string]string{"action": "deliver"}, 1},
		{"portcullis_analysis_duration_seconds", nil, 1},
	} {
		if got := counter(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
