"""The pure per-run state machine: decide(state, event, ...) -> Decision(state, effects)."""
