package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// bashCompletion asks nox for the words that may follow what was typed.
const bashCompletion = `# bash completion for nox: source <(nox completion bash)
_nox_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}" words
  words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  if [[ "$cur" == -* ]]; then
    words+=("$cur")
  fi
  local opts
  opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _nox_complete nox
`

// zshCompletion is the zsh equivalent of bashCompletion.
const zshCompletion = `#compdef nox
# zsh completion for nox: source <(nox completion zsh)
_nox() {
  local -a opts
  local cur=${words[CURRENT]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[1,CURRENT-1]} $cur --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[1,CURRENT-1]} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ -n "${opts[1]}" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _nox nox
`

func (a *app) completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: `Load it in the current shell, e.g.:
   source <(nox completion bash)
   source <(nox completion zsh)
   nox completion fish | source`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion: name a shell: bash, zsh or fish")
			}
			switch sh := c.Args().First(); sh {
			case "bash":
				a.printf("%s", bashCompletion)
			case "zsh":
				a.printf("%s", zshCompletion)
			case "fish":
				script, err := c.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("completion: %w", err)
				}
				a.printf("%s", script)
			default:
				return usagef("completion: unknown shell %q: want bash, zsh or fish", sh)
			}
			return nil
		},
	}
}
