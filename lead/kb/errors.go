package kb

import "errors"

// Sentinel errors a command can fail with. They are returned in a Result, not
// as a failure of the FSM: a rejected command is a normal, replicated outcome
// that every lead reaches the same way.
var (
	// ErrNotFound: the object the command refers to does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a generation or revision guard failed; re-read and retry.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the command is well formed but refers to something
	// inconsistent (a placement for a component the spec does not have).
	ErrInvalid = errors.New("invalid command")
)
