package sandbox

import "strings"

// Status is what `qonnect-sandbox status` shows.
type Status struct {
	ID        string          `json:"id"`
	Dir       string          `json:"dir"`
	EnvFile   string          `json:"envFile"`
	Clusters  []ClusterStatus `json:"clusters"`
	Processes []ProcessStatus `json:"processes"`
}

// ClusterStatus is one cluster's line.
type ClusterStatus struct {
	Name       string `json:"name"`
	Tier       string `json:"tier"`
	Role       string `json:"role"`
	Kubeconfig string `json:"kubeconfig"`
	Server     string `json:"server"`
	State      string `json:"state"` // running, stopped or unreachable
}

// ProcessStatus is one qonnect process's line.
type ProcessStatus struct {
	Kind        string `json:"kind"`
	ID          string `json:"id"`
	Pid         int    `json:"pid"`
	State       string `json:"state"` // running, stopped, partitioned
	Addresses   string `json:"addresses,omitempty"`
	Log         string `json:"log"`
	Partitioned bool   `json:"partitioned,omitempty"`
}

// Status reports the sandbox's clusters and processes as they are now.
func (f *Federation) Status() Status {
	st := f.State()
	out := Status{ID: st.ID, Dir: st.Dir, EnvFile: f.EnvFile()}
	for _, c := range st.Clusters {
		state := "running"
		switch {
		case c.Stopped:
			state = "stopped"
		case !f.Reachable(c.Name):
			state = "unreachable"
		}
		out.Clusters = append(out.Clusters, ClusterStatus{Name: c.Name, Tier: string(c.Tier), Role: string(c.Role), Kubeconfig: c.Kubeconfig, Server: c.Server, State: state})
	}
	part := map[string]bool{}
	for _, id := range st.Partitioned {
		part[id] = true
	}
	for _, p := range append(append([]*Process{}, st.Leads...), st.Agents...) {
		ps := ProcessStatus{Kind: p.Kind, ID: p.ID, Log: p.Log, State: "stopped"}
		if alive(p) {
			ps.Pid, ps.State = p.Pid, "running"
		}
		if p.Kind == "lead" {
			ps.Addresses = strings.Join([]string{"api=https://" + p.APIAddr, "raft=" + p.RaftAddr}, " ")
			if part[p.ID] {
				ps.Partitioned, ps.State = true, ps.State+",partitioned"
			}
		}
		out.Processes = append(out.Processes, ps)
	}
	return out
}
