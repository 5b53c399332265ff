"""Shell completion scripts generated from the argparse parser (bash; zsh through bashcompinit).

Completes command names, each command's options, and the choices of options that have them.
"""

from __future__ import annotations

import argparse

_BASH = """# certbotk8s {shell} completion: eval "$(certbotk8s completion {shell})"
{prelude}_certbotk8s() {{
  local cur prev cmd i
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${{COMP_WORDS[i]}}" in
      {commands_alt}) cmd="${{COMP_WORDS[i]}}"; break ;;
    esac
  done
  case "$prev" in
{choices}
  esac
  case "$cmd" in
{options}
    *) COMPREPLY=($(compgen -W "{commands} {globals}" -- "$cur")) ;;
  esac
}}
complete -F _certbotk8s certbotk8s
"""


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in parser._actions for o in a.option_strings
                  if a.help is not argparse.SUPPRESS)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for `shell` ("bash" or "zsh")."""
    commands = _subcommands(parser)
    choices: dict[str, set[str]] = {}
    for p in [parser, *commands.values()]:
        for action in p._actions:
            if action.choices and action.option_strings:
                for option in action.option_strings:
                    choices.setdefault(option, set()).update(map(str, action.choices))
    choice_lines = "\n".join(
        f'    {option}) COMPREPLY=($(compgen -W "{" ".join(sorted(values))}" -- "$cur")); '
        "return ;;" for option, values in sorted(choices.items()))
    option_lines = "\n".join(
        f'    {name}) COMPREPLY=($(compgen -W "{" ".join(_options(sub))}" -- "$cur")) ;;'
        for name, sub in commands.items())
    for name, sub in commands.items():
        positional = [a for a in sub._actions if not a.option_strings and a.choices]
        if positional:
            words = " ".join(sorted(map(str, positional[0].choices or ())))
            option_lines = option_lines.replace(
                f'    {name}) COMPREPLY=($(compgen -W "',
                f'    {name}) COMPREPLY=($(compgen -W "{words} ', 1)
    prelude = "autoload -U +X bashcompinit && bashcompinit\n" if shell == "zsh" else ""
    return _BASH.format(shell=shell, prelude=prelude, commands_alt="|".join(commands),
                        choices=choice_lines, options=option_lines,
                        commands=" ".join(commands), globals=" ".join(_options(parser)))
