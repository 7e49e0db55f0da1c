package tui

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"

	"qonnect.io/qonnect/internal/fleet"
)

func init() {
	// Golden files are plain text: colours degrade as on a terminal
	// without colour, which is also what this checks still reads well.
	lipgloss.SetColorProfile(termenv.Ascii)
}

func newModel(t *testing.T, f *fakeLead) Model {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return New(ctx, Options{Connect: f.connect, Now: func() time.Time { return testNow }, WatchWait: time.Minute})
}

func keyMsg(s string) tea.KeyMsg {
	switch s {
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "shift+tab":
		return tea.KeyMsg{Type: tea.KeyShiftTab}
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// step runs Update and returns the model and the message its command
// produces (commands run synchronously here, so tests see each step).
func step(t *testing.T, m Model, msg tea.Msg) (Model, tea.Msg) {
	t.Helper()
	next, cmd := m.Update(msg)
	m = next.(Model)
	if cmd == nil {
		return m, nil
	}
	return m, cmd()
}

// update runs Update without running the command it returns (a watch
// would block).
func update(m Model, msg tea.Msg) Model {
	next, _ := m.Update(msg)
	return next.(Model)
}

// loaded is a model that connected and took one snapshot.
func loaded(t *testing.T, f *fakeLead) Model {
	t.Helper()
	m := newModel(t, f)
	msg := m.Init()()
	if _, ok := msg.(connectedMsg); !ok {
		t.Fatalf("Init gave %T, want connectedMsg", msg)
	}
	m, msg = step(t, m, msg)
	if _, ok := msg.(snapshotMsg); !ok {
		t.Fatalf("after connecting: %T, want snapshotMsg", msg)
	}
	next, cmd := m.Update(msg)
	m = next.(Model)
	if cmd == nil {
		t.Fatal("no watch after the snapshot")
	}
	return m
}

func TestUpdateLoadsAndNavigates(t *testing.T) {
	m := loaded(t, newFakeLead())
	if m.state != stateConnected || m.snap == nil || m.snap.Index != 7 {
		t.Fatalf("state %v, snap %+v", m.state, m.snap)
	}
	if got := m.tables[viewPlacements].Len(); got != 4 {
		t.Errorf("%d placement rows, want 4 (shop×3, blog×1)", got)
	}
	sel := func() string { r, _ := m.tables[m.view].Selected(); return r.Key }
	if sel() != "blog/web" {
		t.Errorf("first row %q, want blog/web (apps sorted)", sel())
	}
	m, _ = step(t, m, keyMsg("j"))
	m, _ = step(t, m, keyMsg("down"))
	if sel() != "shop/cache" {
		t.Errorf("after j, down: %q, want shop/cache", sel())
	}
	m, _ = step(t, m, keyMsg("k"))
	if sel() != "shop/web" {
		t.Errorf("after k: %q", sel())
	}
	m, _ = step(t, m, keyMsg("G"))
	if sel() != "shop/db" {
		t.Errorf("after G: %q", sel())
	}
	m, _ = step(t, m, keyMsg("tab"))
	if m.view != viewClusters || sel() != "cloud-a" {
		t.Errorf("after tab: view %v, row %q", m.view, sel())
	}
	m, _ = step(t, m, keyMsg("tab"))
	m, _ = step(t, m, keyMsg("tab"))
	if m.view != viewPlacements || sel() != "shop/db" {
		t.Errorf("tab wraps to placements with the cursor kept: %v %q", m.view, sel())
	}
	m, _ = step(t, m, keyMsg("shift+tab"))
	if m.view != viewLeads {
		t.Errorf("shift+tab: %v", m.view)
	}
}

func TestUpdateDetail(t *testing.T) {
	m := loaded(t, newFakeLead())
	m, _ = step(t, m, keyMsg("j")) // shop/web
	m, _ = step(t, m, keyMsg("enter"))
	if !m.detail.open || m.detail.key != "shop/web" {
		t.Fatalf("detail %+v", m.detail)
	}
	v := m.View()
	for _, want := range []string{"shop/web", "placed on cloud-a: lowest energy", "cloud-b", "lost", "Borda"} {
		if !strings.Contains(v, want) {
			t.Errorf("detail view lacks %q:\n%s", want, v)
		}
	}
	m, _ = step(t, m, keyMsg("esc"))
	if m.detail.open {
		t.Error("esc did not close the detail")
	}
}

func TestUpdateFilter(t *testing.T) {
	m := loaded(t, newFakeLead())
	m = update(m, keyMsg("/"))
	if !m.filterOn {
		t.Fatal("/ did not start the filter")
	}
	for _, r := range "cach" {
		m = update(m, keyMsg(string(r)))
	}
	if got := m.tables[viewPlacements].Len(); got != 1 {
		t.Errorf("%d rows match cach, want 1", got)
	}
	// q while typing is text, not quit.
	next, cmd := m.Update(keyMsg("q"))
	m = next.(Model)
	if cmd != nil {
		if _, quit := cmd().(tea.QuitMsg); quit {
			t.Fatal("q quit while filtering")
		}
	}
	m = update(m, keyMsg("esc"))
	if m.filterOn || m.tables[viewPlacements].Len() != 4 {
		t.Errorf("esc: filterOn %v, rows %d", m.filterOn, m.tables[viewPlacements].Len())
	}
	// enter keeps the filter.
	m = update(m, keyMsg("/"))
	for _, r := range "blog" {
		m = update(m, keyMsg(string(r)))
	}
	m = update(m, keyMsg("enter"))
	if m.filterOn || m.tables[viewPlacements].Len() != 1 || !strings.Contains(m.View(), `filter "blog": 1 of 4`) {
		t.Errorf("after enter:\n%s", m.View())
	}
}

func TestUpdateHelpAndQuit(t *testing.T) {
	m := loaded(t, newFakeLead())
	before := m.bodyHeight()
	m, _ = step(t, m, keyMsg("?"))
	if !m.showHelp || m.bodyHeight() >= before {
		t.Errorf("? did not open the full help (body %d -> %d)", before, m.bodyHeight())
	}
	_, msg := step(t, m, keyMsg("q"))
	if _, ok := msg.(tea.QuitMsg); !ok {
		t.Errorf("q gave %T", msg)
	}
	_, msg = step(t, m, keyMsg("ctrl+c"))
	if _, ok := msg.(tea.QuitMsg); !ok {
		t.Errorf("ctrl+c gave %T", msg)
	}
}

// TestUpdateLiveAndReconnect: a watch that reports a change refetches; a
// lead that goes away shows as disconnected, keeps the last data, and the
// TUI reconnects; answers from the old connection are dropped.
func TestUpdateLiveAndReconnect(t *testing.T) {
	f := newFakeLead()
	m := loaded(t, f)

	f.mutate(func(s *Snapshot) { s.Apps[1].Statuses[0].Phase = fleet.PhaseFailed })
	msg := watchCmd(m.ctx, f, m.gen, m.snap.Index, time.Minute)()
	m, msg = step(t, m, msg) // watch -> snapshot
	m = update(m, msg)
	if m.snap.Index != 8 || !strings.Contains(m.View(), "Failed") {
		t.Errorf("change not shown: index %d\n%s", m.snap.Index, m.View())
	}

	f.setDown(true)
	oldGen := m.gen
	next, cmd := m.Update(errMsg{gen: m.gen, err: errDown})
	m = next.(Model)
	if m.state != stateDisconnected || m.gen == oldGen || m.snap == nil {
		t.Fatalf("after the error: state %v gen %d snap %v", m.state, m.gen, m.snap != nil)
	}
	if cmd == nil {
		t.Fatal("no retry scheduled")
	}
	// The retry is a tea.Tick of retryDelay; deliver it without waiting.
	msg = retryMsg{gen: m.gen}
	v := m.View()
	if !strings.Contains(v, "disconnected") || !strings.Contains(v, "connection refused") || !strings.Contains(v, "shop") {
		t.Errorf("disconnected view:\n%s", v)
	}
	// A late answer of the dead connection changes nothing.
	m2, _ := step(t, m, snapshotMsg{gen: oldGen, snap: Snapshot{Index: 99}})
	if m2.snap.Index == 99 {
		t.Error("a stale snapshot was applied")
	}
	// Retrying while the lead is still down fails again, with back-off.
	m, msg = step(t, m, msg)
	if _, ok := msg.(errMsg); !ok {
		t.Fatalf("connect to a down lead: %T", msg)
	}
	m = update(m, msg)
	if m.failures != 2 {
		t.Errorf("%d failures in a row, want 2", m.failures)
	}
	f.setDown(false)
	m, msg = step(t, m, retryMsg{gen: m.gen}) // retry -> connect
	m, msg = step(t, m, msg)                  // connected -> snapshot
	m = update(m, msg)
	if m.state != stateConnected || !strings.Contains(m.View(), "connected") {
		t.Errorf("did not reconnect: %v\n%s", m.state, m.View())
	}
	if f.connects != 3 {
		t.Errorf("%d connects, want 3", f.connects)
	}
}

// TestResize: every line fits the width and the screen has exactly the
// terminal's height, from wide to tiny.
func TestResize(t *testing.T) {
	m := loaded(t, newFakeLead())
	for _, size := range [][2]int{{80, 24}, {120, 40}, {60, 15}, {40, 10}} {
		for v := range numViews {
			m.view = v
			m, _ = step(t, m, tea.WindowSizeMsg{Width: size[0], Height: size[1]})
			lines := strings.Split(m.View(), "\n")
			if len(lines) != size[1] {
				t.Errorf("%dx%d %v: %d lines", size[0], size[1], v, len(lines))
			}
			for i, l := range lines {
				if w := ansi.StringWidth(l); w > size[0] {
					t.Errorf("%dx%d %v: line %d is %d wide: %q", size[0], size[1], v, i, w, l)
				}
			}
		}
	}
}

// The teatest golden files: the real program, driven by keys, at 80×24.

func runProgram(t *testing.T, f *fakeLead, size [2]int, keys ...string) Model {
	t.Helper()
	tm := teatest.NewTestModel(t, newModel(t, f), teatest.WithInitialTermSize(size[0], size[1]))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("index 7")) },
		teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
	for _, k := range keys {
		tm.Send(keyMsg(k))
	}
	tm.Send(keyMsg("q"))
	return tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(Model)
}

func TestGoldenPlacements(t *testing.T) {
	golden.RequireEqual(t, []byte(runProgram(t, newFakeLead(), [2]int{80, 24}).View()))
}

func TestGoldenClusters(t *testing.T) {
	golden.RequireEqual(t, []byte(runProgram(t, newFakeLead(), [2]int{80, 24}, "tab").View()))
}

func TestGoldenLeads(t *testing.T) {
	golden.RequireEqual(t, []byte(runProgram(t, newFakeLead(), [2]int{80, 24}, "tab", "tab").View()))
}

func TestGoldenDetail(t *testing.T) {
	golden.RequireEqual(t, []byte(runProgram(t, newFakeLead(), [2]int{80, 24}, "j", "enter").View()))
}

func TestGoldenClusterDetail(t *testing.T) {
	golden.RequireEqual(t, []byte(runProgram(t, newFakeLead(), [2]int{80, 24}, "tab", "G", "enter").View()))
}

func TestGoldenFilterAndHelp(t *testing.T) {
	golden.RequireEqual(t, []byte(runProgram(t, newFakeLead(), [2]int{80, 24}, "/", "s", "h", "enter", "?").View()))
}

func TestGoldenResize(t *testing.T) {
	f := newFakeLead()
	tm := teatest.NewTestModel(t, newModel(t, f), teatest.WithInitialTermSize(80, 24))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("index 7")) },
		teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
	tm.Send(tea.WindowSizeMsg{Width: 50, Height: 12})
	tm.Send(keyMsg("q"))
	golden.RequireEqual(t, []byte(tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(Model).View()))
}

func TestGoldenDisconnected(t *testing.T) {
	f := newFakeLead()
	tm := teatest.NewTestModel(t, newModel(t, f), teatest.WithInitialTermSize(80, 24))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("index 7")) },
		teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
	// The lead goes away: the pending watch fails and the view says so.
	f.setDown(true)
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("disconnected")) },
		teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
	tm.Send(keyMsg("q"))
	golden.RequireEqual(t, []byte(tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(Model).View()))
}
