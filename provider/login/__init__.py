"""The login engine: a flow is an ordered list of steps walked by a state machine whose state
lives in the state store. Nothing in this package imports Flask except `views`."""
