package localbackend

// fileOwnerIDs is the host uid and gid that own a sandbox's files.
type fileOwnerIDs struct{ uid, gid int }
