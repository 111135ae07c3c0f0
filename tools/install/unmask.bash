# bash completion for unmask: the commands, then each command's flags as its
# own --help lists them (asked at completion time, so they never go stale).
_unmask() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        local cmds
        cmds=$(unmask --help 2>/dev/null | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
        COMPREPLY=($(compgen -W "$cmds help version" -- "$cur"))
    elif [[ $cur == -* ]]; then
        local flags
        flags=$(unmask "${COMP_WORDS[1]}" --help 2>/dev/null | grep -o -- '--\?-[a-zA-Z][a-zA-Z0-9-]*' | sort -u)
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o filenames -F _unmask unmask
