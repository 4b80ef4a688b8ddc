"""Shell completion for ``deploypipe``, generated from its parser: commands, each command's options, option choices.

argparse has no completion of its own; the script is small and has no dependency.
bash: ``eval "$(deploypipe completion bash)"``; zsh (after ``compinit``): ``eval "$(deploypipe completion zsh)"``,
which runs the same function through zsh's ``bashcompinit``. Paths complete as files.
"""

from __future__ import annotations

import shlex

from deploypipe.cli.suggest import Parser

__all__ = ["completion_script"]

_FUNCTION = """\
_deploypipe() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" command="" word
    for word in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
        case "$word" in -*) ;; *) command="$word"; break ;; esac
    done
    local words=""
    case "$command $prev" in
%(choices)s
    esac
    if [[ -z "$words" ]]; then
        case "$command" in
%(options)s
        esac
        if [[ -n "$command" && "$cur" != -* ]]; then
            COMPREPLY=($(compgen -f -- "$cur"))
            return
        fi
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _deploypipe deploypipe
"""


def _case(pattern: str, words: list[str], indent: str) -> str:
    return f"{indent}{pattern}) words={shlex.quote(' '.join(words))} ;;"


def completion_script(parser: Parser, shell: str) -> str:
    """The completion script for ``shell`` (bash or zsh)."""
    choices: list[str] = []
    options = [_case('""', [*parser.commands, "--help", "--version"], " " * 12)]
    for name, command in parser.commands.items():
        flags = [o for action in command._actions for o in action.option_strings if o.startswith("--")]
        options.append(_case(shlex.quote(name), flags, " " * 12))
        for action in command._actions:
            if action.choices is not None:
                spellings = action.option_strings or ["*"]  # a positional's choices: any previous word
                choices.extend(_case(f"{shlex.quote(name)}\\ {shlex.quote(s) if s != '*' else '*'}",
                                     [str(c) for c in action.choices], " " * 8) for s in spellings)
    script = _FUNCTION % {"choices": "\n".join(choices), "options": "\n".join(options)}
    if shell == "zsh":
        return "#compdef deploypipe\nautoload -U +X bashcompinit && bashcompinit\n" + script
    return script
