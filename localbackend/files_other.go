//go:build !linux

package localbackend

// fileExtensions lists the files extensions the backend offers: none off
// Linux, where the files API's descriptor walks (O_PATH, renameat2) and
// watches (inotify) are not available.
func fileExtensions() []string { return nil }

// watchBudgetNote is the isolation note about watches.
func watchBudgetNote(Config) string {
	return "files.ops and files.watch: offered on Linux only"
}
