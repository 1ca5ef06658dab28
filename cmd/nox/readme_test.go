package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEQuickStartIsTested checks that every nox command of the
// README's Quick start is run, as written, by the newcomer script, so the
// walk-through runs whenever the CLI's tests do.
func TestREADMEQuickStartIsTested(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("testdata/script/newcomer.txtar")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Quick start\n")
	if !ok {
		t.Fatal(`README.md has no "## Quick start" section`)
	}
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(section)
	if block == nil {
		t.Fatal("the Quick start has no sh block")
	}
	// A script line runs a command: exec CMD, exitcode N CMD, ! exec CMD.
	run := regexp.MustCompile(`^(?:\[[^\]]+\] )*(?:!? ?exec|exitcode \d+) (.*)$`)
	ran := map[string]bool{}
	for _, l := range strings.Split(string(script), "\n") {
		if m := run.FindStringSubmatch(l); m != nil {
			ran[m[1]] = true
		}
	}
	n := 0
	for _, l := range strings.Split(block[1], "\n") {
		cmd, _, _ := strings.Cut(l, "  #")
		cmd = strings.TrimSpace(cmd)
		if !strings.HasPrefix(cmd, "nox ") {
			continue
		}
		n++
		if !ran[cmd] {
			t.Errorf("the Quick start runs %q, which newcomer.txtar does not", cmd)
		}
	}
	if n < 5 {
		t.Errorf("found %d nox commands in the Quick start, want its whole session", n)
	}
}

// TestGoLineIsNotAPatchRelease checks go.mod's go line, which every
// module importing the SDK inherits as a minimum: a .0 release (the lowest
// the dependencies allow, as the README's Install says), with the patch
// release nox itself is built with on a toolchain line.
func TestGoLineIsNotAPatchRelease(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if goLine == nil || !regexp.MustCompile(`^1\.\d+\.0$`).Match(goLine[1]) {
		t.Errorf("go.mod: go line %q, want 1.N.0 (put the patch release on the toolchain line)", mod[:min(len(mod), 80)])
	}
	if !regexp.MustCompile(`(?m)^toolchain go1\.\d+\.\d+$`).Match(mod) {
		t.Error("go.mod has no toolchain line")
	}
}
