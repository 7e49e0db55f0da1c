package leadclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/spec"
)

// User is the lead API as a person uses it (the plugin and its TUI). It is
// an interface so that the command layer and the TUI can run against a
// fake in tests; *Client implements it.
type User interface {
	ListApps(ctx context.Context) (*apiv1.AppList, error)
	GetApp(ctx context.Context, name string) (*apiv1.App, error)
	ApplyApp(ctx context.Context, app *spec.Application, dryRun bool) (*apiv1.ApplyResult, error)
	DeleteApp(ctx context.Context, name string) (*apiv1.Ack, error)
	ListClusters(ctx context.Context) (*apiv1.ClusterList, error)
	ListNodes(ctx context.Context, cluster string) (*apiv1.NodeList, error)
	RaftStatus(ctx context.Context) (*apiv1.RaftStatus, error)
	AddMember(ctx context.Context, req apiv1.MemberRequest) (*apiv1.Ack, error)
	RemoveMember(ctx context.Context, id string) (*apiv1.Ack, error)
	Watch(ctx context.Context, index uint64, wait time.Duration) (*apiv1.WatchResult, error)
}

var _ User = (*Client)(nil)

// ListApps returns every application.
func (c *Client) ListApps(ctx context.Context) (*apiv1.AppList, error) {
	var out apiv1.AppList
	if err := c.Do(ctx, http.MethodGet, "/v1/apps", nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list applications: %w", err)
	}
	return &out, nil
}

// GetApp returns one application; a missing one is an *apiv1.Error with
// CodeNotFound.
func (c *Client) GetApp(ctx context.Context, name string) (*apiv1.App, error) {
	var out apiv1.App
	if err := c.Do(ctx, http.MethodGet, "/v1/apps/"+url.PathEscape(name), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get application %q: %w", name, err)
	}
	return &out, nil
}

// ApplyApp creates or updates an application. With dryRun the lead stores
// nothing and answers where the components would be placed and why.
func (c *Client) ApplyApp(ctx context.Context, app *spec.Application, dryRun bool) (*apiv1.ApplyResult, error) {
	if app == nil {
		return nil, fmt.Errorf("apply application: no application given")
	}
	var q url.Values
	if dryRun {
		q = url.Values{"dryRun": {"true"}}
	}
	var out apiv1.ApplyResult
	if err := c.Do(ctx, http.MethodPost, "/v1/apps", q, app, &out, 0); err != nil {
		return nil, fmt.Errorf("apply application %q: %w", app.Metadata.Name, err)
	}
	return &out, nil
}

// DeleteApp removes an application; the agents then remove its objects.
func (c *Client) DeleteApp(ctx context.Context, name string) (*apiv1.Ack, error) {
	var out apiv1.Ack
	if err := c.Do(ctx, http.MethodDelete, "/v1/apps/"+url.PathEscape(name), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("delete application %q: %w", name, err)
	}
	return &out, nil
}

// ListClusters returns every registered cluster.
func (c *Client) ListClusters(ctx context.Context) (*apiv1.ClusterList, error) {
	var out apiv1.ClusterList
	if err := c.Do(ctx, http.MethodGet, "/v1/clusters", nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	return &out, nil
}

// ListNodes returns the nodes of one cluster, or of all when cluster is empty.
func (c *Client) ListNodes(ctx context.Context, cluster string) (*apiv1.NodeList, error) {
	var q url.Values
	if cluster != "" {
		q = url.Values{"cluster": {cluster}}
	}
	var out apiv1.NodeList
	if err := c.Do(ctx, http.MethodGet, "/v1/nodes", q, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return &out, nil
}

// RaftStatus returns the lead group as the answering lead sees it.
func (c *Client) RaftStatus(ctx context.Context) (*apiv1.RaftStatus, error) {
	var out apiv1.RaftStatus
	if err := c.Do(ctx, http.MethodGet, "/v1/raft", nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get lead group status: %w", err)
	}
	return &out, nil
}

// AddMember adds a lead to the Raft group.
func (c *Client) AddMember(ctx context.Context, req apiv1.MemberRequest) (*apiv1.Ack, error) {
	var out apiv1.Ack
	if err := c.Do(ctx, http.MethodPost, "/v1/raft/members", nil, req, &out, 0); err != nil {
		return nil, fmt.Errorf("add lead %q: %w", req.ID, err)
	}
	return &out, nil
}

// RemoveMember removes a lead from the Raft group.
func (c *Client) RemoveMember(ctx context.Context, id string) (*apiv1.Ack, error) {
	var out apiv1.Ack
	if err := c.Do(ctx, http.MethodDelete, "/v1/raft/members/"+url.PathEscape(id), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("remove lead %q: %w", id, err)
	}
	return &out, nil
}

// Watch blocks until the knowledge base is past index, or wait passed (then
// the answer carries the same index). wait is bounded by apiv1.MaxWait by
// the lead; zero means the lead's default.
func (c *Client) Watch(ctx context.Context, index uint64, wait time.Duration) (*apiv1.WatchResult, error) {
	q := url.Values{"index": {strconv.FormatUint(index, 10)}}
	budget := apiv1.DefaultWait
	if wait > 0 {
		q.Set("wait", wait.String())
		budget = wait
	}
	var out apiv1.WatchResult
	if err := c.Do(ctx, http.MethodGet, "/v1/watch", q, nil, &out, budget); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	return &out, nil
}
