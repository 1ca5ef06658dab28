package conformance

import (
	"context"

	"github.com/noxrunner/nox/api"
)

// fsChecks are the checks of the files extensions: files.ops (single-file
// read, write, stat, list, mkdir, remove, move) and files.watch. Each is
// skipped when the backend does not advertise its extension.
func fsChecks() []Check {
	ops := func(id string, req Requirement, operations []string, anchor, spec string, run func(context.Context, *Env) error) Check {
		return Check{ID: id, Level: LevelExtension, Capability: api.ExtFilesOps, Parallel: true,
			Requirement: req, Operations: operations, Anchor: anchor, Spec: spec, Run: run}
	}
	watch := func(id string, req Requirement, anchor, spec string, run func(context.Context, *Env) error) Check {
		return Check{ID: id, Level: LevelExtension, Capability: api.ExtFilesWatch, Parallel: true,
			Requirement: req, Operations: []string{"watchPath"}, Anchor: anchor, Spec: spec, Run: run}
	}
	read, write := []string{"readFile"}, []string{"writeFile"}
	rw := []string{"writeFile", "readFile"}
	all := []string{"readFile", "writeFile", "statFile", "listDir", "makeDir", "removePath", "movePath"}
	return []Check{
		ops("fs/read", Must, read, anchorFSRead,
			"GET .../fs/file: the raw bytes of a file (absolute or relative to /workspace) with ETag and Last-Modified; HEAD answers the same headers",
			checkFSRead),
		ops("fs/read-range", Must, read, anchorFSRead,
			"GET .../fs/file: a single byte range is answered 206 with Content-Range (first-last, suffix, open-ended); a range outside the file 416 JSON Error",
			checkFSReadRange),
		ops("fs/read-conditional", Must, read, anchorFSRead,
			"GET .../fs/file: If-None-Match with the current ETag and If-Modified-Since with Last-Modified are answered 304; once the file changes, its ETag changes and the old one gets the new content",
			checkFSReadConditional),
		ops("fs/write-create-replace", Must, write, anchorFSWrite,
			"PUT .../fs/file: a new file is answered 201, a replaced one 200, with a FileInfo and ETag; the content, sent with Content-Length or chunked, is what a command reads",
			checkFSWriteCreateReplace),
		ops("fs/write-atomic", Must, rw, anchorFSWrite,
			"PUT .../fs/file: the replace is atomic: readers reading while slow 2 MiB writes (limits.maxUploadBytes when smaller) replace the file see the old content or the new in full, never a part",
			checkFSWriteAtomic),
		ops("fs/write-conditional", Must, write, anchorFSWrite,
			"PUT .../fs/file: If-Match with another ETag and If-None-Match: * on an existing file are 412 JSON Errors that leave it unchanged; If-Match with its ETag replaces it; If-None-Match: * creates",
			checkFSWriteConditional),
		ops("fs/write-parents-mode", Must, write, anchorFSWrite,
			"PUT .../fs/file: a missing parent is 404 unless parents=true creates it; mode sets a new file's bits, an existing file keeps its own unless given; a directory at the path is 409",
			checkFSWriteParentsMode),
		{ID: "fs/write-too-large-413", Level: LevelExtension, Capability: api.ExtFilesOps, Parallel: true,
			Requirement: Must, Operations: write, Extensions: []string{api.ExtInfo}, Anchor: anchorFSWriteTooBig,
			Spec: "PUT .../fs/file: a body above Info.limits.maxUploadBytes is a 413 JSON Error and leaves the file as it was",
			Run:  checkFSWriteTooLarge},
		ops("fs/binary-safe", Must, rw, anchorFSWrite,
			"PUT and GET .../fs/file: all 256 byte values round-trip unchanged, both ways between the files API and commands",
			checkFSBinarySafe),
		ops("fs/large-file", Must, rw, anchorFSWrite,
			"PUT and GET .../fs/file: a 64 MiB file (limits.maxUploadBytes when smaller), streamed both ways (the suite holds none of it in memory), round-trips byte-equal",
			checkFSLargeFile),
		ops("fs/stat", Must, []string{"statFile"}, anchorFSStat,
			"GET .../fs/stat: a FileInfo of a file (size, mode, etag), a directory and a symlink (not followed, linkTarget as stored)",
			checkFSStat),
		ops("fs/list", Must, []string{"listDir"}, anchorFSList,
			"GET .../fs/list: entries in lexical order of their paths with their types; depth descends that many levels; a file is 409, a missing directory 404",
			checkFSList),
		ops("fs/list-paging", Must, []string{"listDir"}, anchorFSList,
			"GET .../fs/list: with a small pageSize, pages hold at most pageSize entries and together list every entry once, in order, across directories (depth 2)",
			checkFSListPaging),
		ops("fs/mkdir", Must, []string{"makeDir"}, anchorFSMkdir,
			"POST .../fs/mkdir: creates a directory (with mode); 409 when it exists, 404 when its parent is missing; parents creates the chain and accepts an existing directory",
			checkFSMkdir),
		ops("fs/remove", Must, []string{"removePath"}, anchorFSRemove,
			"POST .../fs/remove: 204 for a file, an empty directory, a link (not its target) and with recursive a tree; 404 missing; 409 a non-empty directory without recursive; /workspace itself refused",
			checkFSRemove),
		ops("fs/move", Must, []string{"movePath"}, anchorFSMove,
			"POST .../fs/move: renames a file or a directory with its contents; an existing dst is 409 without overwrite and replaced with it; a directory into itself is refused; a missing src 404",
			checkFSMove),
		ops("fs/paths-contained", Must, all, anchorFSPath,
			"paths of the files API: .. and links (to /etc, /tmp, ../..) never reach beyond what a direct path reaches: read and write through them are refused or confined, and the host's files are never returned",
			checkFSContained),
		ops("fs/errors-name-path", Must, all, anchorFSPath,
			"the files API answers errors as JSON Errors naming the path: 404 missing (read, stat, list, remove, move), 409 wrong type or existing (read of a directory, mkdir), 400 a path with a NUL byte",
			checkFSErrors),
		ops("fs/unknown-sandbox-404", Must, append(all, "watchPath"), anchorFS+"file/get/responses/404",
			"every files operation on an unknown sandbox is a 404 JSON Error and creates nothing",
			checkFSUnknown),
		watch("fs/watch-create", Must, anchorFSWatch,
			"GET .../fs/watch: ready first; a file created by a command, a directory (isDir) and a file written through the API are reported as create events, within 200 ms of the command's answer (or of its round trip, when longer)",
			checkWatchCreate),
		watch("fs/watch-events", Must, anchorFSWatch,
			"GET .../fs/watch: 200 small appends give a few coalesced write events, not one each; a rename inside the directory is one rename event with oldPath; a removal a remove event",
			checkWatchEvents),
		watch("fs/watch-recursive", Must, anchorFSWatch,
			"GET .../fs/watch?recursive=true: changes in existing subdirectories and in a subdirectory created after the watch started are reported",
			checkWatchRecursive),
		watch("fs/watch-errors", Must, anchorFSWatch,
			"GET .../fs/watch: a missing directory is 404 and a file 409, JSON Errors naming the path, before any stream",
			checkWatchErrors),
	}
}
