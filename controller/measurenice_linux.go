package controller

import (
	"runtime"
	"syscall"
)

// measureNice is the niceness of the thread the background measuring
// decodes on: the lowest priority, so that the broker, the controller's
// replies and the speakers on the same machine get a core the moment they
// need one, and measuring takes what is left.
const measureNice = 19

// lowerThreadPriority locks the calling goroutine to its thread for good
// (the thread ends with the goroutine) and lowers that thread's priority.
// Linux's setpriority applies to one thread when given its id.
func lowerThreadPriority() error {
	runtime.LockOSThread()
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), measureNice)
}
