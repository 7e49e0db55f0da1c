// Package apiv1 holds the wire types of the lead's HTTP/JSON API under /v1,
// shared by the lead (server), the agent and the plugin (clients).
//
// Endpoints (all JSON, all over mutual TLS):
//
//	Agents (identity = the cluster name in the client certificate; an agent
//	may act only for its own cluster):
//	  POST /v1/clusters                          RegisterRequest → RegisterResponse
//	  PUT  /v1/clusters/{name}/nodes             NodeReport → Ack
//	  PUT  /v1/clusters/{name}/status            StatusReport → Ack  (also the heartbeat)
//	  GET  /v1/clusters/{name}/assignments?index=N&wait=30s → Assignments
//	       (blocking query: returns at once when the cluster's assignments
//	       changed since index N, else after wait with the same index)
//
//	Users (plugin, TUI):
//	  GET    /v1/apps                            → AppList
//	  POST   /v1/apps[?dryRun=true]              spec.Application → ApplyResult (create or update)
//	  GET    /v1/apps/{name}                     → App
//	  DELETE /v1/apps/{name}                     → Ack
//	  GET    /v1/clusters                        → ClusterList
//	  GET    /v1/nodes[?cluster=NAME]            → NodeList
//	  GET    /v1/raft                            → RaftStatus
//	  POST   /v1/raft/members                    MemberRequest → Ack
//	  DELETE /v1/raft/members/{id}               → Ack
//	  GET    /v1/watch?index=N&wait=30s          → WatchResult (any KB change)
//
//	Everyone: GET /healthz, /readyz, /metrics.
//
// Reads are answered by any lead from its own state; add ?consistent=true
// to have it first catch up with the leader. Writes sent to a follower are
// forwarded to the leader. Errors are an Error body with a 4xx/5xx status.
package apiv1

import (
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
)

// MaxBodyBytes limits every request body; an application spec is bounded by
// spec.MaxSpecBytes, which this leaves room for.
const MaxBodyBytes = spec.MaxSpecBytes + 64<<10

// DefaultWait is how long a blocking query waits when none is asked; MaxWait bounds it.
const (
	DefaultWait = 30 * time.Second
	MaxWait     = 5 * time.Minute
)

// Headers the lead sets on every answer.
const (
	HeaderIndex  = "X-Qonnect-Index"  // the KB's last applied index on the answering lead
	HeaderLeader = "X-Qonnect-Leader" // the current leader's API address, if known
)

// Error codes, one per kind of failure.
const (
	CodeBadRequest  = "BadRequest"  // 400: malformed body, unknown field, invalid value
	CodeForbidden   = "Forbidden"   // 403: the identity may not do this
	CodeNotFound    = "NotFound"    // 404
	CodeConflict    = "Conflict"    // 409: a generation guard failed
	CodeTooLarge    = "TooLarge"    // 413
	CodeNotLeader   = "NotLeader"   // 503: no leader known to forward to
	CodeUnavailable = "Unavailable" // 503: shutting down, not ready
	CodeInternal    = "Internal"    // 500
)

// Error is the body of every failed request.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	File    string `json:"file,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Ack answers a write: the Raft index at which it was committed.
type Ack struct {
	Index uint64 `json:"index"`
}

// RegisterRequest is an agent announcing its cluster.
type RegisterRequest struct {
	Cluster      fleet.Cluster `json:"cluster"`
	AgentVersion string        `json:"agentVersion,omitempty"`
}

// RegisterResponse tells the agent the lead group's API addresses, so it
// does not depend on the one it started with, and how often to report.
type RegisterResponse struct {
	Index             uint64        `json:"index"`
	Leads             []string      `json:"leads"`
	HeartbeatInterval time.Duration `json:"heartbeatInterval"`
}

// NodeReport carries a cluster's nodes. Full means these are all of them:
// nodes the lead knows that are not listed are removed.
type NodeReport struct {
	Nodes []fleet.Node `json:"nodes"`
	Full  bool         `json:"full"`
	// Deleted names nodes gone since the last report (when not Full).
	Deleted []string `json:"deleted,omitempty"`
}

// StatusReport carries the status of the components an agent runs; an
// empty report is a plain heartbeat. Only changes of phase, message,
// generation or replica counts are replicated; the time is kept on the leader.
type StatusReport struct {
	Statuses []fleet.ComponentStatus `json:"statuses"`
}

// Assignment is one component the lead assigns to a cluster.
type Assignment struct {
	App        string `json:"app"`
	Component  string `json:"component"`
	Namespace  string `json:"namespace"`
	Generation int64  `json:"generation"`
	// Nodes the component's pods must run on (required node affinity).
	Nodes []string `json:"nodes"`
	// Resources are the component's objects, placeholders not yet filled.
	Resources []spec.Object `json:"resources"`
	// Addresses fill ${qonnect:NAME} placeholders.
	Addresses map[string]string `json:"addresses,omitempty"`
	// Leaving is true when the component is migrating away from this
	// cluster: keep it running, it will disappear from the list once its
	// new home is healthy.
	Leaving bool `json:"leaving,omitempty"`
}

// Assignments is everything assigned to one cluster. Whatever the agent
// runs that is not listed here is to be removed.
type Assignments struct {
	Index uint64       `json:"index"`
	Items []Assignment `json:"items"`
	// Leads are the lead group's current API addresses.
	Leads []string `json:"leads"`
}

// App is an application as the knowledge base holds it.
type App struct {
	Spec       spec.Application        `json:"spec"`
	Generation int64                   `json:"generation"`
	Created    time.Time               `json:"created"`
	Updated    time.Time               `json:"updated"`
	Placements []scheduler.Placement   `json:"placements"`
	Statuses   []fleet.ComponentStatus `json:"statuses"`
	Events     []Event                 `json:"events,omitempty"`
}

// Event is something the lead did to an application, for `describe`.
type Event struct {
	Time      time.Time `json:"time"`
	Component string    `json:"component,omitempty"`
	Reason    string    `json:"reason"` // Placed, Migrating, Migrated, FailedOver, Pending, Updated
	Message   string    `json:"message"`
}

// AppList is every application.
type AppList struct {
	Index uint64 `json:"index"`
	Items []App  `json:"items"`
}

// ApplyResult answers POST /v1/apps.
type ApplyResult struct {
	Index uint64 `json:"index"`
	// Result is created, configured or unchanged, as kubectl apply says.
	Result string `json:"result"`
	App    App    `json:"app"`
	// DryRun is set when nothing was stored; App.Placements then show where
	// the components would go and why.
	DryRun bool `json:"dryRun,omitempty"`
}

// ClusterInfo is a cluster with what the leader knows of its liveness.
type ClusterInfo struct {
	fleet.Cluster
	Nodes      int       `json:"nodes"`
	ReadyNodes int       `json:"readyNodes"`
	Alive      bool      `json:"alive"`
	LastSeen   time.Time `json:"lastSeen,omitempty"`
}

// ClusterList is every registered cluster.
type ClusterList struct {
	Index uint64        `json:"index"`
	Items []ClusterInfo `json:"items"`
}

// NodeList is nodes, by cluster and name.
type NodeList struct {
	Index uint64       `json:"index"`
	Items []fleet.Node `json:"items"`
}

// Member is one lead of the Raft group.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddress"`
	APIAddr  string `json:"apiAddress,omitempty"`
	Suffrage string `json:"suffrage"` // Voter, Nonvoter
	Leader   bool   `json:"leader"`
	// Reachable is the leader's view; unknown on followers.
	Reachable *bool `json:"reachable,omitempty"`
}

// RaftStatus is the lead group as the answering lead sees it.
type RaftStatus struct {
	ID           string   `json:"id"`
	State        string   `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string   `json:"leader"`
	LeaderAPI    string   `json:"leaderAPI,omitempty"`
	Term         uint64   `json:"term"`
	LastIndex    uint64   `json:"lastIndex"`
	CommitIndex  uint64   `json:"commitIndex"`
	AppliedIndex uint64   `json:"appliedIndex"`
	Members      []Member `json:"members"`
	// KBHash is a digest of the knowledge base at AppliedIndex, so leads can be compared.
	KBHash string `json:"kbHash"`
}

// MemberRequest adds a lead to the group.
type MemberRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddress"`
	APIAddr  string `json:"apiAddress"`
	Voter    *bool  `json:"voter,omitempty"` // default true
}

// WatchResult answers a watch: the KB's index once it is past the one asked.
type WatchResult struct {
	Index uint64 `json:"index"`
}
