package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"portcullis/internal/store"
)

// BreakKind classifies a broken link of the chain.
type BreakKind string

// The kinds of break Verify tells apart.
const (
	// Modified: an entry's content no longer matches its hash (a field
	// was changed after it was written).
	Modified BreakKind = "modified"
	// Deleted: entries are missing: a gap in Seq, or an entry that links
	// to a hash no stored entry has (deleted, later ones renumbered).
	Deleted BreakKind = "deleted"
	// Reordered: an entry stands at another position than the one it was
	// written at, or links to an entry that is not the one before it.
	Reordered BreakKind = "reordered"
	// BadMAC: the hash chain holds but an entry's MAC is missing or does
	// not verify under the key: the chain was rewritten by someone without
	// the key.
	BadMAC BreakKind = "bad-mac"
	// AnchorMismatch: an exported head is not in the log as it was
	// exported: the log was rewritten or its end removed.
	AnchorMismatch BreakKind = "anchor-mismatch"
)

// ChainError is the first broken link Verify found. It matches ErrBroken.
type ChainError struct {
	// Seq is the position (the stored Seq) where the break shows.
	Seq    int64
	Kind   BreakKind
	Detail string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit: chain broken at seq %d (%s): %s", e.Seq, e.Kind, e.Detail)
}

// Is makes errors.Is(err, ErrBroken) true.
func (e *ChainError) Is(target error) bool { return target == ErrBroken }

// Report summarizes a verification.
type Report struct {
	// Entries is the number of entries read.
	Entries int64
	// Head is the last entry (zero for an empty log).
	Head Head
	// MACs is the number of MACs verified (0 without a key).
	MACs int64
	// Anchors is the number of exported heads checked.
	Anchors int
}

// maxReorderSearch bounds how far beyond the last Seq Verify looks for
// the position a displaced entry was written at.
const maxReorderSearch = 4096

// Verify walks the whole chain in Seq order and checks, for each entry,
// that its hash matches its content, that it links to the entry before
// (Seq one more, PrevHash that entry's Hash, Genesis for the first), that
// its MAC verifies when the log has a key, and finally that each anchor
// (a head exported earlier) is in the chain unchanged. It returns the
// report and, for a chain that does not verify, a *ChainError describing
// the first break; other errors are the store's.
//
// A modified entry is told from a displaced one by recomputing its hash at
// other positions: an entry whose content hashes correctly at position s
// was written at s. Entries removed from the end of the log leave no trace
// in the chain itself; an anchor at or after them detects it.
func (l *Log) Verify(ctx context.Context, anchors ...Head) (Report, error) {
	var rep Report
	// Pass 1: where each stored hash is, and the last Seq.
	index := map[string]int64{}
	var last int64
	err := l.st.ScanAudit(ctx, 0, func(s *store.AuditEntry) error {
		index[s.Hash] = s.Seq
		last = s.Seq
		return nil
	})
	if err != nil {
		return rep, err
	}

	var prev *Event
	var broken *ChainError
	err = l.st.ScanAudit(ctx, 0, func(s *store.AuditEntry) error {
		e := fromEntry(s)
		rep.Entries++
		if b := l.checkEntry(e, prev, index, last, &rep); b != nil {
			broken = b
			return b
		}
		prev = e
		return nil
	})
	if broken != nil {
		return rep, broken
	}
	if err != nil {
		return rep, err
	}
	if prev != nil {
		rep.Head = Head{Seq: prev.Seq, Hash: prev.Hash}
	}
	for _, a := range anchors {
		rep.Anchors++
		seq, ok := index[a.Hash]
		switch {
		case a.Seq > last:
			return rep, &ChainError{Seq: last, Kind: AnchorMismatch,
				Detail: fmt.Sprintf("the log ends at seq %d but the exported head %s is later: entries were removed from its end", last, a)}
		case !ok || seq != a.Seq:
			return rep, &ChainError{Seq: a.Seq, Kind: AnchorMismatch,
				Detail: fmt.Sprintf("entry %d is not the one exported as %s: the log was rewritten from there or before", a.Seq, a)}
		}
	}
	return rep, nil
}

// checkEntry checks one entry against its predecessor.
func (l *Log) checkEntry(e, prev *Event, index map[string]int64, last int64, rep *Report) *ChainError {
	canon := Canonical(e)
	sum := sha256.Sum256(canon)
	if hex.EncodeToString(sum[:]) != e.Hash {
		written, found := writtenAt(canon, e.Hash, e.Seq, last)
		if !found {
			return &ChainError{Seq: e.Seq, Kind: Modified,
				Detail: "the entry's content does not match its hash: a field was changed after it was written"}
		}
		if _, linked := index[e.PrevHash]; linked || e.PrevHash == Genesis {
			return &ChainError{Seq: e.Seq, Kind: Reordered,
				Detail: fmt.Sprintf("the entry stored at seq %d was written as entry %d: entries were moved", e.Seq, written)}
		}
		return &ChainError{Seq: e.Seq, Kind: Deleted,
			Detail: fmt.Sprintf("the entry stored at seq %d was written as entry %d and the entry it followed is gone: entries were deleted and the later ones renumbered", e.Seq, written)}
	}
	if l.opts.Key != nil && e.Seq >= l.opts.MACFrom {
		m := hmac.New(sha256.New, l.opts.Key)
		m.Write(canon)
		switch {
		case e.MAC == "":
			return &ChainError{Seq: e.Seq, Kind: BadMAC, Detail: "the entry has no MAC although the log is keyed: written by someone without the key"}
		case !macEqual(hex.EncodeToString(m.Sum(nil)), e.MAC):
			return &ChainError{Seq: e.Seq, Kind: BadMAC, Detail: "the entry's MAC does not verify under the key: written or rewritten by someone without the key"}
		}
		rep.MACs++
	}
	if prev == nil {
		switch {
		case e.Seq != 1:
			return &ChainError{Seq: e.Seq, Kind: Deleted,
				Detail: fmt.Sprintf("the log starts at seq %d: entries 1 to %d are missing", e.Seq, e.Seq-1)}
		case e.PrevHash != Genesis:
			return &ChainError{Seq: e.Seq, Kind: Deleted,
				Detail: "the first entry links to an earlier one: entries before it were deleted and the rest renumbered"}
		}
		return nil
	}
	if e.Seq != prev.Seq+1 {
		detail := fmt.Sprintf("entry %d is missing", prev.Seq+1)
		if e.Seq > prev.Seq+2 {
			detail = fmt.Sprintf("entries %d to %d are missing", prev.Seq+1, e.Seq-1)
		}
		return &ChainError{Seq: e.Seq, Kind: Deleted, Detail: detail + " (a gap in the sequence)"}
	}
	if e.PrevHash != prev.Hash {
		if at, ok := index[e.PrevHash]; ok {
			return &ChainError{Seq: e.Seq, Kind: Reordered,
				Detail: fmt.Sprintf("the entry follows the one stored at seq %d, not entry %d: entries were moved", at, prev.Seq)}
		}
		return &ChainError{Seq: e.Seq, Kind: Deleted,
			Detail: fmt.Sprintf("the entry links to an entry that is no longer in the log, not to entry %d: entries were deleted and the later ones renumbered", prev.Seq)}
	}
	return nil
}

// writtenAt looks for the position at which content canon (an entry
// stored at seq) hashes to hash, and returns it.
func writtenAt(canon []byte, hash string, seq, last int64) (int64, bool) {
	want, err := hex.DecodeString(hash)
	if err != nil || len(want) != sha256.Size {
		return 0, false
	}
	c := append([]byte(nil), canon...)
	at := c[len(canonicalVersion) : len(canonicalVersion)+8]
	for s := int64(1); s <= last+maxReorderSearch; s++ {
		if s == seq {
			continue
		}
		binary.BigEndian.PutUint64(at, uint64(s))
		if sum := sha256.Sum256(c); string(sum[:]) == string(want) {
			return s, true
		}
	}
	return 0, false
}
