package pipeline_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"portcullis/internal/pipeline"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/relay"
)

// BenchmarkProcessDeliver runs the deliver path of one ~10 KB message signed
// with RSA-2048 whose DMARC passes: analysis (DNS from memory), decision,
// header changes, evidence queued for the SQLite store's group commit, and
// a Deliverer that accepts at once.
func BenchmarkProcessDeliver(b *testing.B) {
	accept := pipeline.DelivererFunc(func(context.Context, *pipeline.Delivery) relay.Result {
		return relay.Result{Status: relay.StatusAccepted}
	})
	h := newHarness(b, accept)
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = h.lab.Build(b, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Subject: fmt.Sprintf("report %d", i),
			Sign: pipelinetest.GoodDomain, BodySize: 9500})
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(msgs[0])))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			tx := h.tx(msgs[i%int64(len(msgs))], "alice@"+pipelinetest.GoodDomain)
			tx.ID = fmt.Sprintf("bench-%d", i)
			if out := h.pipe.Process(context.Background(), tx); out.Reply.Code != 250 {
				b.Fatalf("reply %s", out.Reply)
			}
		}
	})
}
