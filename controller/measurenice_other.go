//go:build !linux

package controller

// lowerThreadPriority does nothing where a thread's priority cannot be set
// on its own: the measuring yields to commands all the same (measurepace.go).
func lowerThreadPriority() error { return nil }
