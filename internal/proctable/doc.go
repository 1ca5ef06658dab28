// Package proctable keeps the processes of one sandbox for a backend:
// their records, their output for replay by offset, their waiters and
// their standard input, and implements driver.Process over them.
//
// A backend supplies only what differs between backends: how to start a
// command (a StartFunc returning a Runner) and where its output goes (the
// Sink the table hands it). Both the reference backend and the local
// backend use one Table per sandbox, so that the extension behaves the
// same on both and is written once.
//
// Output is kept per process in a buffer of Config.OutputBytes: a log of
// chunks with absolute offsets (bytes of output since the process
// started, stdout and stderr together). When it is full the oldest bytes
// are dropped, and a reader that asked for them is told how many it
// missed. Output is committed on UTF-8 character boundaries per stream
// where it is valid UTF-8 (a partial character waits for its end), so
// chunks never split a character.
package proctable
