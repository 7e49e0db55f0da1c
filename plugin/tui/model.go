// Package tui is `kubectl qonnect tui`: a live view of where every
// component runs (placements), the clusters, the lead group, and why a
// component was placed where it is.
//
// It follows the Elm architecture: Model is the state, Update a type
// switch over typed messages delegating to small handlers and component
// models (Table, detail, filter), View a pure function of the state. All
// I/O is in tea.Cmds (cmds.go) that return typed messages (msgs.go). Updates
// come from the lead's long-poll watch; when a lead goes away the view says
// so and reconnects.
package tui

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// Options configure the TUI.
type Options struct {
	Connect ConnectFunc
	// Now is the clock for ages; default time.Now.
	Now func() time.Time
	// Logger receives what goes wrong; never the screen. Default: discard.
	Logger *slog.Logger
	// WatchWait is how long one watch waits; the views also refresh then
	// (the lead group's state does not move the index). Default 30s.
	WatchWait time.Duration
	// Keys and Styles replace the defaults when set.
	Keys   *KeyMap
	Styles *Styles
}

type connState int

const (
	stateConnecting connState = iota
	stateConnected
	stateDisconnected
)

// Model is the TUI's root model.
type Model struct {
	ctx    context.Context
	opts   Options
	keys   KeyMap
	styles Styles
	log    *slog.Logger

	width, height int

	view   view
	tables [numViews]Table
	snap   *Snapshot

	detail   detail
	filter   textinput.Model
	filterOn bool
	help     help.Model
	showHelp bool

	conn     *Conn
	via      string
	gen      int
	state    connState
	lastErr  error
	failures int
}

// New returns the TUI's model. Its commands stop when ctx ends.
func New(ctx context.Context, opts Options) Model {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.WatchWait == 0 {
		opts.WatchWait = 30 * time.Second
	}
	keys, styles := DefaultKeyMap(), DefaultStyles()
	if opts.Keys != nil {
		keys = *opts.Keys
	}
	if opts.Styles != nil {
		styles = *opts.Styles
	}
	fi := textinput.New()
	fi.Prompt = "/"
	fi.Placeholder = "filter"
	m := Model{
		ctx: ctx, opts: opts, keys: keys, styles: styles, log: opts.Logger,
		tables: [numViews]Table{NewTable(placementColumns), NewTable(clusterColumns), NewTable(leadColumns)},
		detail: newDetail(),
		filter: fi,
		help:   help.New(),
	}
	m.resize(80, 24)
	return m
}

// Init connects.
func (m Model) Init() tea.Cmd { return connectCmd(m.ctx, m.opts.Connect, m.gen) }

// Update is a type switch; each case is a small handler.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
		return m, nil
	case tea.KeyMsg:
		return m.onKey(msg)
	case connectedMsg:
		return m.onConnected(msg)
	case snapshotMsg:
		return m.onSnapshot(msg)
	case watchMsg:
		return m.onWatch(msg)
	case errMsg:
		return m.onError(msg)
	case retryMsg:
		return m.onRetry(msg)
	}
	return m, nil
}

func (m Model) onConnected(msg connectedMsg) (tea.Model, tea.Cmd) {
	if msg.gen != m.gen {
		closeConn(msg.conn)
		return m, nil
	}
	m.conn, m.via, m.state, m.lastErr = msg.conn, msg.conn.Via, stateConnected, nil
	m.log.Info("connected", "via", msg.conn.Via)
	return m, snapshotCmd(m.ctx, m.conn.Client, m.gen)
}

func (m Model) onSnapshot(msg snapshotMsg) (tea.Model, tea.Cmd) {
	if msg.gen != m.gen || m.conn == nil {
		return m, nil
	}
	m.failures = 0
	m.snap = &msg.snap
	m.refresh()
	return m, watchCmd(m.ctx, m.conn.Client, m.gen, msg.snap.Index, m.opts.WatchWait)
}

// onWatch refetches: the index moved, or the wait passed and the lead
// group's state (which does not move the index) may have changed.
func (m Model) onWatch(msg watchMsg) (tea.Model, tea.Cmd) {
	if msg.gen != m.gen || m.conn == nil {
		return m, nil
	}
	return m, snapshotCmd(m.ctx, m.conn.Client, m.gen)
}

// onError marks the lead gone, drops the connection (a port-forward to a
// dead pod is useless) and schedules a reconnect.
func (m Model) onError(msg errMsg) (tea.Model, tea.Cmd) {
	if msg.gen != m.gen || m.ctx.Err() != nil {
		return m, nil
	}
	m.log.Warn("lead unreachable", "err", msg.err, "failures", m.failures+1)
	closeConn(m.conn)
	m.conn, m.state, m.lastErr = nil, stateDisconnected, msg.err
	m.gen++
	m.failures++
	return m, retryCmd(m.gen, retryDelay(m.failures-1))
}

func (m Model) onRetry(msg retryMsg) (tea.Model, tea.Cmd) {
	if msg.gen != m.gen {
		return m, nil
	}
	m.state = stateConnecting
	return m, connectCmd(m.ctx, m.opts.Connect, m.gen)
}

func closeConn(c *Conn) {
	if c != nil && c.Close != nil {
		c.Close()
	}
}

// onKey routes a key to the filter input, the detail pane, or the view.
func (m Model) onKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if msg.String() == "ctrl+c" {
		return m, m.quit()
	}
	if m.filterOn {
		return m.onFilterKey(msg)
	}
	switch {
	case key.Matches(msg, m.keys.Quit):
		return m, m.quit()
	case key.Matches(msg, m.keys.Help):
		m.showHelp = !m.showHelp
		m.resize(m.width, m.height)
	case key.Matches(msg, m.keys.NextView):
		m.switchView((m.view + 1) % numViews)
	case key.Matches(msg, m.keys.PrevView):
		m.switchView((m.view + numViews - 1) % numViews)
	case m.detail.open:
		m.detail = m.detail.Update(msg, m.keys)
	case key.Matches(msg, m.keys.Filter):
		m.filterOn = true
		m.filter.SetValue(m.tables[m.view].filter)
		m.filter.CursorEnd()
		return m, m.filter.Focus()
	case key.Matches(msg, m.keys.Back):
		m.tables[m.view].SetFilter("")
	case key.Matches(msg, m.keys.Detail):
		m.openDetail()
	default:
		m.tables[m.view] = m.tables[m.view].Update(msg, m.keys)
	}
	return m, nil
}

// onFilterKey edits the filter; the table follows as one types.
func (m Model) onFilterKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch msg.Type {
	case tea.KeyEsc:
		m.filterOn = false
		m.filter.Blur()
		m.tables[m.view].SetFilter("")
		return m, nil
	case tea.KeyEnter:
		m.filterOn = false
		m.filter.Blur()
		return m, nil
	}
	var cmd tea.Cmd
	m.filter, cmd = m.filter.Update(msg)
	m.tables[m.view].SetFilter(m.filter.Value())
	return m, cmd
}

func (m *Model) quit() tea.Cmd {
	closeConn(m.conn)
	m.conn = nil
	return tea.Quit
}

func (m *Model) switchView(v view) {
	m.view = v
	m.detail.open = false
}

func (m *Model) openDetail() {
	row, ok := m.tables[m.view].Selected()
	if !ok || m.snap == nil {
		return
	}
	m.detail.open, m.detail.key, m.detail.view = true, row.Key, m.view
	m.detail.vp.GotoTop()
	m.refreshDetail()
}

// refresh rebuilds the tables (and the open detail) from the snapshot.
func (m *Model) refresh() {
	if m.snap == nil {
		return
	}
	now := m.opts.Now()
	m.tables[viewPlacements].SetRows(placementRows(m.snap, now))
	m.tables[viewClusters].SetRows(clusterRows(m.snap))
	m.tables[viewLeads].SetRows(leadRows(m.snap))
	m.refreshDetail()
}

func (m *Model) refreshDetail() {
	if !m.detail.open || m.snap == nil {
		return
	}
	now := m.opts.Now()
	var title, body string
	switch m.detail.view {
	case viewPlacements:
		title, body = placementDetail(m.snap, m.detail.key, now)
	case viewClusters:
		title, body = clusterDetail(m.snap, m.detail.key, now)
	default:
		title, body = leadDetail(m.snap, m.detail.key)
	}
	m.detail.title = title
	m.detail.vp.SetContent(body)
}

// Layout: a header line, a sub-header line, the body, the help.
func (m *Model) resize(w, h int) {
	m.width, m.height = max(w, 20), max(h, 6)
	m.help.Width = m.width
	body := m.bodyHeight()
	for i := range m.tables {
		m.tables[i].SetSize(m.width, body)
	}
	m.detail.vp.Width, m.detail.vp.Height = m.width, max(body-1, 1)
	m.filter.Width = m.width - 4
}

func (m Model) helpView() string {
	v := m.help.ShortHelpView(m.keys.ShortHelp())
	if m.showHelp {
		v = m.help.FullHelpView(m.keys.FullHelp())
	}
	// bubbles/help lets the last item overflow when its ellipsis does
	// not fit; cut every line at the edge.
	lines := strings.Split(v, "\n")
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, m.width, "")
	}
	return strings.Join(lines, "\n")
}

func (m Model) bodyHeight() int {
	return max(m.height-2-lipgloss.Height(m.helpView()), 1)
}

// View draws the screen; it reads the model and nothing else.
func (m Model) View() string {
	body := m.tables[m.view].View(m.styles)
	if m.detail.open {
		body = m.detail.View(m.styles)
	}
	if m.snap == nil {
		body = m.styles.Dim.Render("waiting for the lead…")
	}
	body = lipgloss.NewStyle().Height(m.bodyHeight()).MaxHeight(m.bodyHeight()).Render(body)
	return strings.Join([]string{m.headerView(), m.subHeaderView(), body, m.helpView()}, "\n")
}

func (m Model) headerView() string {
	var tabs []string
	for v := range numViews {
		if v == m.view {
			tabs = append(tabs, m.styles.ActiveTab.Render(v.String()))
		} else {
			tabs = append(tabs, m.styles.Tab.Render(v.String()))
		}
	}
	left := m.styles.Title.Render("qonnect") + "  " + strings.Join(tabs, "  ")
	right := m.connView()
	gap := m.width - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 1 {
		right = ansi.Truncate(right, max(m.width-ansi.StringWidth(left)-1, 0), "…")
		gap = 1
	}
	return ansi.Truncate(left+strings.Repeat(" ", gap)+right, m.width, "")
}

func (m Model) connView() string {
	switch m.state {
	case stateConnected:
		idx := ""
		if m.snap != nil {
			idx = fmt.Sprintf(" · index %d", m.snap.Index)
		}
		return m.styles.Connected.Render("● connected" + idx)
	case stateDisconnected:
		return m.styles.Disconnect.Render("✕ disconnected, retrying")
	}
	return m.styles.Dim.Render("○ connecting…")
}

func (m Model) subHeaderView() string {
	t := m.tables[m.view]
	var s string
	switch {
	case m.filterOn:
		s = m.filter.View()
	case m.state == stateDisconnected && m.lastErr != nil:
		s = m.styles.Disconnect.Render("lead unreachable: " + oneLine(m.lastErr.Error()))
	case t.filter != "":
		s = m.styles.Filter.Render(fmt.Sprintf("filter %q: %d of %d (esc clears)", t.filter, t.Len(), t.Total()))
	case m.view == viewLeads && m.snap != nil:
		s = m.styles.Dim.Render(leadSummary(m.snap.Raft))
	case m.snap != nil:
		s = m.styles.Dim.Render(m.counts())
	}
	return ansi.Truncate(s, m.width, "…")
}

func (m Model) counts() string {
	switch m.view {
	case viewPlacements:
		return fmt.Sprintf("%d applications, %d components", len(m.snap.Apps), m.tables[viewPlacements].Total())
	case viewClusters:
		return fmt.Sprintf("%d clusters, %d nodes", len(m.snap.Clusters), len(m.snap.Nodes))
	}
	return ""
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// detail is the pane that shows one row in full: a component's placement
// explanation, a cluster's nodes, a lead.
type detail struct {
	open  bool
	view  view
	key   string
	title string
	vp    viewport.Model
}

func newDetail() detail { return detail{vp: viewport.New(80, 20)} }

// Update scrolls, or closes the pane on esc or enter.
func (d detail) Update(msg tea.KeyMsg, k KeyMap) detail {
	switch {
	case key.Matches(msg, k.Back), key.Matches(msg, k.Detail):
		d.open = false
	case key.Matches(msg, k.Up):
		d.vp.ScrollUp(1)
	case key.Matches(msg, k.Down):
		d.vp.ScrollDown(1)
	case key.Matches(msg, k.PageUp):
		d.vp.HalfPageUp()
	case key.Matches(msg, k.PageDown):
		d.vp.HalfPageDown()
	case key.Matches(msg, k.Top):
		d.vp.GotoTop()
	case key.Matches(msg, k.Bottom):
		d.vp.GotoBottom()
	}
	return d
}

// View is the title line and the scrolled content.
func (d detail) View(s Styles) string {
	title := s.DetailHead.Render(d.title) + s.Dim.Render("  (esc to close)")
	return title + "\n" + d.vp.View()
}
