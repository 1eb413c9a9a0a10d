package speaker

import "syscall"

// freeSpace is how many bytes of the file system holding dir an unprivileged
// process may still write (statfs's available blocks: root's reserve does
// not count, as the speaker must not eat into it either).
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
