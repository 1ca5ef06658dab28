package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionFlag is the hidden flag urfave/cli adds for shell completion.
const completionFlag = "--generate-bash-completion"

// completingArgument reports whether args ask for completions (they end
// with completionFlag) after a "--", where only the arguments of a command
// follow. urfave/cli would run the command line as typed there (it turns
// completion off after "--"), so nox answers with no words instead.
func completingArgument(args []string) bool {
	n := len(args)
	return n > 1 && args[n-1] == completionFlag && slices.Contains(args[1:n-1], "--")
}

// normalizeArgs reorders args so that urfave/cli, which stops parsing flags
// at the first argument, accepts flags anywhere: `nox create demo --wait`
// and `nox exec demo --json -- ls` work. Global flags found after the
// command move before it; the command's flags move before its arguments,
// which follow a "--". For a command with an argument limit (exec), every
// argument after the limit is kept verbatim, so `nox exec demo ls -la`
// runs `ls -la`. Unknown flags stay where the parser reports them.
func (a *app) normalizeArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	rest := args[1:]
	if rest[len(rest)-1] == completionFlag {
		return args // completion must see the words as typed, without "--"
	}
	globals := flagArity(app.Flags)
	var global []string
	i := 0
	for i < len(rest) && isFlagArg(rest[i]) && rest[i] != "--" {
		i = take(rest, i, globals[flagName(rest[i])], &global)
	}
	if i >= len(rest) || rest[i] == "--" {
		return args
	}
	cmd := app.Command(rest[i])
	names := []string{rest[i]}
	if cmd != nil && len(cmd.Subcommands) > 0 && i+1 < len(rest) {
		// One level of subcommands (nox fs ls ID -l).
		if sub := cmd.Command(rest[i+1]); sub != nil {
			cmd = sub
			i++
			names = append(names, rest[i])
		}
	}
	if cmd == nil || cmd.SkipFlagParsing || len(cmd.Subcommands) > 0 {
		return args
	}
	local := flagArity(cmd.Flags)
	limit := a.argLimits[cmd.Name]
	var flags, pos []string
	for i++; i < len(rest); {
		t := rest[i]
		switch {
		case t == "--":
			pos = append(pos, rest[i+1:]...)
			i = len(rest)
		case limit > 0 && len(pos) >= limit:
			pos = append(pos, rest[i:]...)
			i = len(rest)
		case !isFlagArg(t):
			pos = append(pos, t)
			i++
		default:
			n := flagName(t)
			if takes, ok := local[n]; ok {
				i = take(rest, i, takes, &flags)
			} else if takes, ok := globals[n]; ok {
				i = take(rest, i, takes, &global)
			} else {
				flags = append(flags, t) // unknown: the parser reports it
				i++
			}
		}
	}
	out := append([]string{args[0]}, global...)
	out = append(out, names...)
	out = append(out, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

// take appends the flag at rest[i] (and its value when it takes one and is
// not written --name=value) to dst and returns the index after it.
func take(rest []string, i int, takesValue bool, dst *[]string) int {
	*dst = append(*dst, rest[i])
	if takesValue && !strings.Contains(rest[i], "=") && i+1 < len(rest) {
		*dst = append(*dst, rest[i+1])
		return i + 2
	}
	return i + 1
}

// flagArity maps every name and alias of flags to whether it takes a value.
func flagArity(flags []cli.Flag) map[string]bool {
	m := map[string]bool{}
	for _, f := range flags {
		takes := true
		if tv, ok := f.(cli.DocGenerationFlag); ok {
			takes = tv.TakesValue()
		}
		for _, n := range f.Names() {
			m[n] = takes
		}
	}
	return m
}

// isFlagArg reports whether s looks like a flag ("-" alone is an argument).
func isFlagArg(s string) bool { return len(s) > 1 && s[0] == '-' }

// flagName returns the name of a flag argument: "--wait=true" gives "wait".
func flagName(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "-")
	if i := strings.IndexByte(s, '='); i >= 0 {
		s = s[:i]
	}
	return s
}
