package kb

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// SnapshotVersion is the version of the snapshot encoding.
const SnapshotVersion = 1

// snapshotFile is how a snapshot is encoded: JSON, whose maps
// encoding/json writes with sorted keys, so the same state always gives the
// same bytes.
type snapshotFile struct {
	Version int    `json:"version"`
	Index   uint64 `json:"index"`
	State   *State `json:"state"`
}

type fsmSnapshot struct {
	st    *State
	index uint64
}

// Persist writes the snapshot; on any error it cancels the sink so raft
// discards the partial file.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.st, s.index); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot at index %d: %w", s.index, err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close snapshot at index %d: %w", s.index, err)
	}
	return nil
}

// Release is a no-op: the snapshot holds no resources beyond memory.
func (s *fsmSnapshot) Release() {}

func writeSnapshot(w io.Writer, st *State, index uint64) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := json.NewEncoder(bw).Encode(snapshotFile{Version: SnapshotVersion, Index: index, State: st}); err != nil {
		return err
	}
	return bw.Flush()
}

func readSnapshot(r io.Reader) (*State, uint64, error) {
	var f snapshotFile
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	if err := dec.Decode(&f); err != nil {
		return nil, 0, fmt.Errorf("decode snapshot: %w", err)
	}
	if f.Version < 1 || f.Version > SnapshotVersion {
		return nil, 0, fmt.Errorf("snapshot version %d; this lead reads versions 1..%d", f.Version, SnapshotVersion)
	}
	if f.State == nil {
		return nil, 0, fmt.Errorf("snapshot at index %d has no state", f.Index)
	}
	f.State.normalize()
	return f.State, f.Index, nil
}

// hashState digests the canonical JSON of the state (without the index, so
// equal states compare equal however they were reached).
func hashState(st *State) (string, error) {
	h := sha256.New()
	if err := json.NewEncoder(h).Encode(st); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
