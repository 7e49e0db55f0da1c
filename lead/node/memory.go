package node

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Memory limit bounds: the soft limit follows the live heap (which is
// mostly the knowledge base) with this much room on top.
const (
	memFloor    = 96 << 20
	memHeadroom = 24 << 20
)

// TuneMemory keeps a soft memory limit of 1.25 × the live heap plus a
// little room, re-read every few seconds, unless GOMEMLIMIT is set. The
// lead's live heap is its KB; what it allocates besides is short-lived
// (scheduling passes, requests). With Go's default pacing the heap may
// grow to twice the live heap and freed memory goes back to the kernel
// lazily; a limit that tracks the live heap makes the scavenger return it,
// so RSS stays near the KB's size. Because it follows the live heap, a
// larger federation never runs into it.
func TuneMemory(ctx context.Context, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var last int64
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live := int64(sample[0].Value.Uint64())
			limit := max(memFloor, live+live/4+memHeadroom)
			if last == 0 || limit > last+last/10 || limit < last-last/10 {
				debug.SetMemoryLimit(limit)
				log.Debug("memory limit follows the live heap", "liveMiB", live>>20, "limitMiB", limit>>20)
				last = limit
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
