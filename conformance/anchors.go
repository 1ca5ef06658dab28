package conformance

// The anchors of the suite's own checks: JSON pointers into the contract
// (api/openapi.yaml), or sections of the NoxRunner v1 specification as
// restated in noxrunner-v1.md, for what the contract states only in its
// prose. A test resolves every contract anchor.
const (
	contractDoc = "api/openapi.yaml#"
	specDoc     = "noxrunner-v1.md#"

	anchorHealthz = contractDoc + "/paths/~1healthz/get"
	anchorInfo    = contractDoc + "/components/schemas/Info"
	anchorList    = contractDoc + "/paths/~1v1~1sandboxes/get"

	anchorSandbox       = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}"
	anchorCreate        = anchorSandbox + "/put"
	anchorGet           = anchorSandbox + "/get"
	anchorDelete        = anchorSandbox + "/delete"
	anchorDeleteUnknown = anchorDelete + "/responses/404"
	anchorSessionID     = contractDoc + "/components/parameters/SessionId"
	anchorTTL           = contractDoc + "/components/schemas/CreateSandboxRequest/properties/ttlSeconds"
	anchorQuantity      = contractDoc + "/components/schemas/Quantity"
	anchorMaxTTL        = contractDoc + "/components/schemas/BackendLimits/properties/maxTtlSeconds"

	anchorTouch        = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1touch/post"
	anchorTouchUnknown = anchorTouch + "/responses/404"

	anchorExec          = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1exec/post"
	anchorExecInvalid   = anchorExec + "/responses/400"
	anchorExecUnknown   = anchorExec + "/responses/404"
	anchorExecStream    = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1exec~1stream/post"
	anchorCmd           = contractDoc + "/components/schemas/ExecRequest/properties/cmd"
	anchorEnv           = contractDoc + "/components/schemas/ExecRequest/properties/env"
	anchorWorkdir       = contractDoc + "/components/schemas/ExecRequest/properties/workdir"
	anchorTimeout       = contractDoc + "/components/schemas/ExecRequest/properties/timeoutSeconds"
	anchorStdout        = contractDoc + "/components/schemas/ExecResult/properties/stdout"
	anchorTimedOut      = contractDoc + "/components/schemas/ExecResult/properties/timedOut"
	anchorTruncated     = contractDoc + "/components/schemas/ExecResult/properties/stdoutTruncated"
	anchorOOMKilled     = contractDoc + "/components/schemas/ExecResult/properties/oomKilled"
	anchorMaxTimeout    = contractDoc + "/components/schemas/BackendLimits/properties/maxTimeoutSeconds"
	anchorBearer        = contractDoc + "/components/securitySchemes/bearerAuth"
	anchorUpload        = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1files~1upload/post"
	anchorUploadInvalid = anchorUpload + "/responses/400"
	anchorUploadTooBig  = anchorUpload + "/responses/413"
	anchorDownload      = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1files~1download/get"
	anchorDownloadGone  = anchorDownload + "/responses/404"

	anchorError         = contractDoc + "/components/schemas/Error"
	anchorExecBusy      = anchorExec + "/responses/503"
	anchorUploadChunked = anchorUpload

	anchorSpecGeneral  = specDoc + "general"
	anchorSpecSecurity = specDoc + "security-considerations-listed-by-the-spec"
)

// The anchors of the files extensions (files.ops, files.watch).
const (
	anchorFS            = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1fs~1"
	anchorFSRead        = anchorFS + "file/get"
	anchorFSWrite       = anchorFS + "file/put"
	anchorFSWriteTooBig = anchorFSWrite + "/responses/413"
	anchorFSStat        = anchorFS + "stat/get"
	anchorFSList        = anchorFS + "list/get"
	anchorFSMkdir       = anchorFS + "mkdir/post"
	anchorFSRemove      = anchorFS + "remove/post"
	anchorFSMove        = anchorFS + "move/post"
	anchorFSWatch       = anchorFS + "watch/get"
	anchorFSPath        = contractDoc + "/components/parameters/FilePath"
)

// The anchors of the processes extensions (processes, processes.terminal)
// and of exec.stdin.
const (
	anchorProcs          = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1processes"
	anchorProcStart      = anchorProcs + "/post"
	anchorProcList       = anchorProcs + "/get"
	anchorProcStartBusy  = anchorProcStart + "/responses/503"
	anchorProc           = anchorProcs + "~1{processId}"
	anchorProcGet        = anchorProc + "/get"
	anchorProcKill       = anchorProc + "/delete"
	anchorProcWait       = anchorProc + "~1wait/get"
	anchorProcOutput     = anchorProc + "~1output/get"
	anchorProcStdin      = anchorProc + "~1stdin/post"
	anchorProcSignal     = anchorProc + "~1signal/post"
	anchorProcResize     = anchorProc + "~1resize/post"
	anchorProcTerminal   = anchorProc + "~1terminal/get"
	anchorProcBad        = contractDoc + "/components/responses/BadProcessRequest"
	anchorProcNotFound   = contractDoc + "/components/responses/ProcessNotFound"
	anchorProcRequest    = contractDoc + "/components/schemas/ProcessRequest"
	anchorProcTimeout    = anchorProcRequest + "/properties/timeoutSeconds"
	anchorProcPty        = anchorProcRequest + "/properties/pty"
	anchorProcRecord     = contractDoc + "/components/schemas/Process"
	anchorProcChunk      = contractDoc + "/components/schemas/ProcessOutputChunk"
	anchorProcTruncated  = contractDoc + "/components/schemas/ProcessOutputTruncated"
	anchorLimits         = contractDoc + "/components/schemas/BackendLimits/properties/"
	anchorMaxProcs       = anchorLimits + "maxProcessesPerSandbox"
	anchorExecStdin      = contractDoc + "/components/schemas/ExecRequest/properties/stdin"
	anchorExecStdinCodec = contractDoc + "/components/schemas/ExecRequest/properties/stdinEncoding"
	anchorMaxStdin       = anchorLimits + "maxStdinBytes"
)

// The anchors of the extensions metrics and sandboxes.usage.
const (
	anchorMetrics = contractDoc + "/paths/~1metrics/get"
	anchorUsage   = contractDoc + "/components/schemas/SandboxUsage"
)
