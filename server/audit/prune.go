package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// ErrTampered is the cause when Prune refuses to remove events that fail
// verification: removing them would destroy the evidence.
var ErrTampered = errors.New("audit: the log fails verification")

// Prune removes, node by node, the events older than before, keeping the
// remainder verifiable: in the same transaction it writes a checkpoint of
// kind "prune" at the last removed event (its seq and hash, MAC'd), which
// Verify starts the remaining chain from. It removes only what it has
// verified and a checkpoint vouches for, so events written while sealed
// and not yet checkpointed wait for a later prune; and it never removes an
// event at or after before, even when times and seqs disagree. A node whose
// chain fails verification there is left whole and its problem returned
// (wrapping ErrTampered), after the other nodes are pruned: one Conflict
// fault naming every such node and saying how many events went elsewhere.
func Prune(ctx context.Context, a Archive, k *Keys, before time.Time) (removed int64, err error) {
	if k == nil {
		return 0, ErrKeysUnavailable
	}
	nodes, err := a.AuditNodes(ctx)
	if err != nil {
		return 0, err
	}
	var refused []string
	refuse := func(node string, p *Problem) {
		refused = append(refused, "audit log fails verification, nothing pruned on node "+node+": "+p.String())
	}
	for _, node := range nodes {
		seq, _, err := a.AuditPruneBoundary(ctx, node, before)
		if errors.Is(err, storage.ErrNotFound) {
			// Nothing precedes the node's first event from before on. If
			// an older event follows it all the same, times and seqs
			// disagree: a request that began early but reached the log
			// late, or an event moved in the database. Only the whole
			// chain tells which, and a moved event is to be reported, not
			// passed over as if the node had nothing to prune.
			older, err := a.AuditEventBefore(ctx, node, before)
			if err != nil {
				return removed, err
			}
			if older {
				nr, err := verifyNode(ctx, a, k, node, Live{}, 0)
				if err != nil {
					return removed, err
				}
				if p := nr.Problem; p != nil {
					refuse(node, p)
				}
			}
			continue
		}
		if err != nil {
			return removed, err
		}
		nr, err := verifyNode(ctx, a, k, node, Live{}, seq)
		if err != nil {
			return removed, err
		}
		if p := nr.Problem; p != nil {
			refuse(node, p)
			continue
		}
		if nr.Anchored <= nr.PrunedThrough {
			continue // nothing a checkpoint vouches for beyond the last prune
		}
		cp := storage.AuditCheckpoint{Node: node, Seq: nr.Anchored, Hash: nr.anchoredHash, Kind: kindPrune, CreatedAt: time.Now().UTC()}
		cp.MAC = checkpointMAC(k, cp)
		n, err := a.PruneAudit(ctx, cp)
		if errors.Is(err, storage.ErrConflict) {
			return removed, fault.Wrap(fault.Conflict, fmt.Sprintf("node %s: its log changed while it was being pruned (its events, or a row where the prune's checkpoint goes); nothing was pruned on it: run audit verify, then try again", node), err)
		}
		if err != nil {
			return removed, err
		}
		removed += n
	}
	if len(refused) == 0 {
		return removed, nil
	}
	msg := strings.Join(refused, "; ")
	if removed > 0 {
		msg += fmt.Sprintf(" (%d event(s) were pruned on the nodes whose logs verify)", removed)
	}
	return removed, &fault.Error{Kind: fault.Conflict, Msg: msg, Err: ErrTampered}
}
