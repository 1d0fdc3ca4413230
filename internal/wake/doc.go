// Package wake is a coalescing broadcast signal: Notify wakes every
// subscriber without blocking; signals that arrive while a subscriber is
// awake collapse into one.
package wake
