package scheduler

// Schedule decides every component of in.App. Decisions come in the order
// of the application's components.
func Schedule(cfg Config, in Input) []Decision {
	panic("scheduler: not implemented yet")
}
