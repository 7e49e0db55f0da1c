package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
)

// Column is a table column. Flex columns give up width first when the
// terminal is narrow.
type Column struct {
	Title string
	Flex  bool
	// State marks a column whose words are coloured by Styles.State.
	State bool
	// Optional columns are hidden, rightmost first, when shrinking the
	// flex columns is not enough.
	Optional bool
}

// Row is one line of a table; Key identifies it across refreshes so the
// cursor stays on the same object when rows move.
type Row struct {
	Key   string
	Cells []string
}

// Table is a scrolling, filterable table with a cursor. Unlike
// bubbles/table it marks the selected row with "›", so the selection
// shows on a terminal without colour.
type Table struct {
	cols   []Column
	all    []Row
	rows   []Row // after the filter
	filter string
	cursor int
	offset int
	width  int
	height int // rows of data, the header excluded
}

// NewTable returns an empty table with columns.
func NewTable(cols []Column) Table { return Table{cols: cols} }

// SetSize sets the space the table may use, its header included.
func (t *Table) SetSize(width, height int) {
	t.width, t.height = width, max(height-1, 1)
	t.clamp()
}

// SetRows replaces the rows, keeping the cursor on the same key.
func (t *Table) SetRows(rows []Row) {
	cur, hadCur := t.Selected()
	t.all = rows
	t.apply()
	if hadCur {
		for i, r := range t.rows {
			if r.Key == cur.Key {
				t.cursor = i
				break
			}
		}
	}
	t.clamp()
}

// SetFilter keeps only rows with a cell containing f (any case).
func (t *Table) SetFilter(f string) {
	t.filter = f
	t.apply()
	t.cursor, t.offset = 0, 0
	t.clamp()
}

func (t *Table) apply() {
	if t.filter == "" {
		t.rows = t.all
		return
	}
	f := strings.ToLower(t.filter)
	t.rows = t.rows[:0:0]
	for _, r := range t.all {
		if strings.Contains(strings.ToLower(strings.Join(r.Cells, "\x00")), f) {
			t.rows = append(t.rows, r)
		}
	}
}

// Len is how many rows pass the filter.
func (t Table) Len() int { return len(t.rows) }

// Total is how many rows there are.
func (t Table) Total() int { return len(t.all) }

// Selected is the row under the cursor.
func (t Table) Selected() (Row, bool) {
	if t.cursor < 0 || t.cursor >= len(t.rows) {
		return Row{}, false
	}
	return t.rows[t.cursor], true
}

func (t *Table) clamp() {
	t.cursor = max(min(t.cursor, len(t.rows)-1), 0)
	if t.cursor < t.offset {
		t.offset = t.cursor
	}
	if t.height > 0 && t.cursor >= t.offset+t.height {
		t.offset = t.cursor - t.height + 1
	}
	t.offset = max(min(t.offset, len(t.rows)-t.height), 0)
}

// Update moves the cursor.
func (t Table) Update(msg tea.KeyMsg, k KeyMap) Table {
	switch {
	case key.Matches(msg, k.Up):
		t.cursor--
	case key.Matches(msg, k.Down):
		t.cursor++
	case key.Matches(msg, k.PageUp):
		t.cursor -= t.height
	case key.Matches(msg, k.PageDown):
		t.cursor += t.height
	case key.Matches(msg, k.Top):
		t.cursor = 0
	case key.Matches(msg, k.Bottom):
		t.cursor = len(t.rows) - 1
	}
	t.clamp()
	return t
}

// widths fits the columns in the width: each gets what its widest cell
// needs, then flex columns shrink (widest first), then optional columns
// are hidden (width -1), until the table fits.
func (t Table) widths() []int {
	w := make([]int, len(t.cols))
	for i, c := range t.cols {
		w[i] = ansi.StringWidth(c.Title)
	}
	for _, r := range t.all {
		for i := range w {
			if i < len(r.Cells) {
				w[i] = max(w[i], ansi.StringWidth(r.Cells[i]))
			}
		}
	}
	need := func() int {
		total, shown := 2, 0 // the cursor mark
		for _, x := range w {
			if x >= 0 {
				total += x
				shown++
			}
		}
		return total + 2*max(shown-1, 0)
	}
	// shrink takes one cell from the widest flex column above floor.
	shrink := func(floor int) bool {
		widest := -1
		for i, c := range t.cols {
			if c.Flex && w[i] > floor && (widest < 0 || w[i] > w[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			return false
		}
		w[widest]--
		return true
	}
	// hide drops the rightmost optional column still shown.
	hide := func() bool {
		for i := len(t.cols) - 1; i >= 0; i-- {
			if t.cols[i].Optional && w[i] >= 0 {
				w[i] = -1
				return true
			}
		}
		return false
	}
	// Names stay readable (12 cells) as long as optional columns can go;
	// only then are they cut further.
	for need() > t.width && shrink(12) {
	}
	for need() > t.width && hide() {
	}
	for need() > t.width && shrink(4) {
	}
	return w
}

// View renders the header and the visible rows.
func (t Table) View(s Styles) string {
	w := t.widths()
	var b strings.Builder
	head := make([]string, len(t.cols))
	for i, c := range t.cols {
		head[i] = c.Title
	}
	b.WriteString(s.Header.Render(t.line("  ", head, w, nil)))
	end := min(t.offset+t.height, len(t.rows))
	for i := t.offset; i < end; i++ {
		b.WriteByte('\n')
		if i == t.cursor {
			b.WriteString(s.Selected.Render(t.line("› ", t.rows[i].Cells, w, nil)))
		} else {
			b.WriteString(t.line("  ", t.rows[i].Cells, w, &s))
		}
	}
	return b.String()
}

// line lays out one row; with colour set, state columns are coloured.
func (t Table) line(mark string, cells []string, w []int, colour *Styles) string {
	var b strings.Builder
	b.WriteString(mark)
	first := true
	for i := range t.cols {
		if w[i] < 0 {
			continue
		}
		if !first {
			b.WriteString("  ")
		}
		first = false
		cell := ""
		if i < len(cells) {
			cell = cells[i]
		}
		cell = ansi.Truncate(cell, w[i], "…")
		pad := w[i] - ansi.StringWidth(cell)
		if colour != nil && t.cols[i].State {
			cell = colour.State(cell).Render(cell)
		}
		b.WriteString(cell)
		b.WriteString(strings.Repeat(" ", pad))
	}
	return ansi.Truncate(b.String(), t.width, "")
}
