package tui

import "github.com/charmbracelet/lipgloss"

// Styles is every style of the TUI, in one place. Colours are adaptive
// and lipgloss drops them on terminals without colour, so nothing may
// depend on colour alone: the selected row also carries a "›" marker and
// states are words.
type Styles struct {
	Title      lipgloss.Style
	Tab        lipgloss.Style
	ActiveTab  lipgloss.Style
	Header     lipgloss.Style
	Selected   lipgloss.Style
	Dim        lipgloss.Style
	Good       lipgloss.Style
	Warn       lipgloss.Style
	Bad        lipgloss.Style
	Connected  lipgloss.Style
	Disconnect lipgloss.Style
	Filter     lipgloss.Style
	DetailHead lipgloss.Style
}

// DefaultStyles are the TUI's styles.
func DefaultStyles() Styles {
	return Styles{
		Title:      lipgloss.NewStyle().Bold(true),
		Tab:        lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "244", Dark: "245"}),
		ActiveTab:  lipgloss.NewStyle().Bold(true).Underline(true),
		Header:     lipgloss.NewStyle().Bold(true),
		Selected:   lipgloss.NewStyle().Bold(true).Foreground(lipgloss.AdaptiveColor{Light: "21", Dark: "117"}),
		Dim:        lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "244", Dark: "245"}),
		Good:       lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "28", Dark: "42"}),
		Warn:       lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "130", Dark: "214"}),
		Bad:        lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "160", Dark: "203"}),
		Connected:  lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "28", Dark: "42"}),
		Disconnect: lipgloss.NewStyle().Bold(true).Foreground(lipgloss.AdaptiveColor{Light: "160", Dark: "203"}),
		Filter:     lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "130", Dark: "214"}),
		DetailHead: lipgloss.NewStyle().Bold(true),
	}
}

// State colours a state word: healthy, in progress, or broken.
func (s Styles) State(word string) lipgloss.Style {
	switch word {
	case "Healthy", "Alive", "Leader", "Ready", "yes":
		return s.Good
	case "Failed", "Down", "Unreachable", "NoReadyNodes", "no":
		return s.Bad
	case "Pending", "Progressing", "Migrating", "Degraded", "Removing", "Candidate":
		return s.Warn
	}
	return lipgloss.NewStyle()
}
