package leadclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
)

// The agent's calls. Each acts for one cluster; the lead checks that the
// client certificate names that cluster.

// Register announces the agent's cluster. The answer lists the lead group's
// API addresses; the caller decides whether to adopt them (SetAddresses).
func (c *Client) Register(ctx context.Context, req apiv1.RegisterRequest) (*apiv1.RegisterResponse, error) {
	var out apiv1.RegisterResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/clusters", nil, req, &out, 0); err != nil {
		return nil, fmt.Errorf("register cluster %q: %w", req.Cluster.Name, err)
	}
	return &out, nil
}

// ReportNodes sends some or all of the cluster's nodes.
func (c *Client) ReportNodes(ctx context.Context, cluster string, r apiv1.NodeReport) (*apiv1.Ack, error) {
	var out apiv1.Ack
	if err := c.Do(ctx, http.MethodPut, clusterPath(cluster, "nodes"), nil, r, &out, 0); err != nil {
		return nil, fmt.Errorf("report %d nodes of cluster %q: %w", len(r.Nodes), cluster, err)
	}
	return &out, nil
}

// ReportStatus sends component statuses; an empty report is a heartbeat.
func (c *Client) ReportStatus(ctx context.Context, cluster string, r apiv1.StatusReport) (*apiv1.Ack, error) {
	var out apiv1.Ack
	if err := c.Do(ctx, http.MethodPut, clusterPath(cluster, "status"), nil, r, &out, 0); err != nil {
		return nil, fmt.Errorf("report status of cluster %q: %w", cluster, err)
	}
	return &out, nil
}

// Assignments is a blocking query for the cluster's assignments: it
// answers at once when they changed since index, else after about wait with
// the same index. Index 0 always answers at once. wait ≤ 0 asks for the
// lead's default.
func (c *Client) Assignments(ctx context.Context, cluster string, index uint64, wait time.Duration) (*apiv1.Assignments, error) {
	q := url.Values{"index": {strconv.FormatUint(index, 10)}}
	if wait > 0 {
		q.Set("wait", wait.String())
	} else {
		wait = apiv1.DefaultWait
	}
	var out apiv1.Assignments
	if err := c.Do(ctx, http.MethodGet, clusterPath(cluster, "assignments"), q, nil, &out, wait); err != nil {
		return nil, fmt.Errorf("assignments of cluster %q: %w", cluster, err)
	}
	return &out, nil
}

func clusterPath(cluster, what string) string {
	return "/v1/clusters/" + url.PathEscape(cluster) + "/" + what
}
