package raftstore

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/lead/kb"
)

// benchWrites drives b.N acknowledged writes through the leader of a
// three-lead group over mutual TLS on loopback, with raft.db on disk,
// from `writers` concurrent writers (1 = one write at a time; more lets
// raft batch them into one append and one fsync).
func benchWrites(b *testing.B, writers int) {
	stores := newTLSGroup(b, 3, true, Tuning{})
	l := tlsLeader(b, stores)
	ctx := context.Background()
	// Warm up connections and the leader's first entry.
	if err := register(ctx, l, "warmup"); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				t0 := time.Now()
				_, err := l.Apply(ctx, kb.TypeRegisterCluster, kb.RegisterCluster{Cluster: fleet.Cluster{
					Name: fmt.Sprintf("c-%d", i), Tier: fleet.TierEdge, Endpoint: "e:443"}})
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d writes failed", failed.Load())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func BenchmarkWrites(b *testing.B) {
	b.Run("single", func(b *testing.B) { benchWrites(b, 1) })
	b.Run("batched-64", func(b *testing.B) { benchWrites(b, 64) })
}
