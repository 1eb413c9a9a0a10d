package speaker

import "github.com/tutti-audio/tutti/protocol"

// maxUnacked bounds the states waiting for their playlist; the oldest go
// first (a later state's ack says more).
const maxUnacked = 64

// acks decides when to acknowledge session states: once one is applied
// and its playlist is held, each (term, seq) once, in order.
type acks struct {
	unacked             []protocol.SessionState // applied, in order, waiting for their playlist
	haveAcked           bool
	ackedTerm, ackedSeq uint64
}

// applied notes a state the speaker applied.
func (a *acks) applied(st protocol.SessionState) {
	if len(a.unacked) == maxUnacked {
		a.unacked = a.unacked[1:]
	}
	a.unacked = append(a.unacked, st)
}

// due returns the states to acknowledge now: those whose playlist holds
// says is there. A state acknowledged drops the older ones still waiting.
func (a *acks) due(holds func(version uint64, hash string) bool) []protocol.SessionState {
	var out []protocol.SessionState
	for i := 0; i < len(a.unacked); i++ {
		st := a.unacked[i]
		if !holds(st.PlaylistVersion, st.PlaylistHash) {
			continue
		}
		a.unacked = a.unacked[i+1:]
		i = -1
		if a.haveAcked && !protocol.Supersedes(st.Term, st.Seq, a.ackedTerm, a.ackedSeq) {
			continue
		}
		a.haveAcked, a.ackedTerm, a.ackedSeq = true, st.Term, st.Seq
		out = append(out, st)
	}
	return out
}
