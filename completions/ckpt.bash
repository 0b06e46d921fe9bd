# bash completion for ckpt. Install: copy to /usr/share/bash-completion/completions/ckpt
# (or source it from ~/.bashrc).

_ckpt_root() {
  local i
  for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
    case "${COMP_WORDS[i]}" in
      -C | --root) printf '%s\n' "${COMP_WORDS[i + 1]}"; return ;;
      --root=*) printf '%s\n' "${COMP_WORDS[i]#--root=}"; return ;;
    esac
  done
  printf '%s\n' "${CKPT_ROOT:-.}"
}

_ckpt_refs() {
  local root d refs="latest last best"
  root=$(_ckpt_root)
  for d in "$root"/step-*/; do
    [[ -d $d ]] && refs+=" $(basename "$d")"
  done
  printf '%s\n' "$refs"
}

_ckpt_pending() {
  local root d steps=""
  root=$(_ckpt_root)
  for d in "$root"/.ckpt/pending/step-*/; do
    [[ -d $d ]] && steps+=" $(basename "$d")"
  done
  printf '%s\n' "$steps"
}

_ckpt() {
  local cur prev cmd="" i
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD - 1]}"
  local commands="save info verify load prune promote-best abort diff rm rollback help version"
  local global="-C --root --json -q --quiet --lock-timeout --no-fsync --threads --progress -V --version -h --help"
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      -C | --root | --lock-timeout | --threads | --progress) ((i++)) ;;
      -*) ;;
      *) cmd="${COMP_WORDS[i]}"; break ;;
    esac
  done

  case "$prev" in
    -C | --root | --from | --to) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --progress) COMPREPLY=($(compgen -W "auto always never json" -- "$cur")); return ;;
    --mode) COMPREPLY=($(compgen -W "min max" -- "$cur")); return ;;
    --checksum) COMPREPLY=($(compgen -W "sha256 none" -- "$cur")); return ;;
    --shard) COMPREPLY=($(compgen -W "env" -- "$cur")); return ;;
    --step | --metric | --meta | --weights | --best-key | --keep-last | --keep-best | \
      --keep-every | --keep-within | --lock-timeout | --threads | --key | --value | --only | \
      --group | --pending-expiry)
      return ;;
  esac

  local opts=""
  case "$cmd" in
    "") COMPREPLY=($(compgen -W "$commands $global" -- "$cur")); return ;;
    save)
      opts="--step --from --metric --meta --weights --best-key --mode --keep-last --keep-best
            --keep-every --keep-within --checksum --copy --move --link --force --follow-symlinks --dedup --no-dedup
            --shard --group --pending-expiry"
      if [[ $cur != -* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return
      fi
      ;;
    info)
      opts="--path --limit --sort"
      case "$prev" in
        --sort) COMPREPLY=($(compgen -W "step commit" -- "$cur")); return ;;
        --limit) return ;;
      esac
      ;;
    verify) opts="--quick --strict --repair -v --verbose" ;;
    load) opts="--only --weights-only --to --link --dir --no-verify" ;;
    prune) opts="--keep-last --keep-best --keep-every --keep-within --pending-expiry -n --dry-run" ;;
    abort) opts="" ;;
    diff) opts="--exit-code" ;;
    rm) opts="--force -n --dry-run" ;;
    rollback) opts="-n --dry-run" ;;
    promote-best) opts="--key --mode --value --force" ;;
    help) COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
  else
    case "$cmd" in
      info | verify | load | promote-best | diff | rm | rollback) COMPREPLY=($(compgen -W "$(_ckpt_refs)" -- "$cur")) ;;
      abort) COMPREPLY=($(compgen -W "$(_ckpt_pending)" -- "$cur")) ;;
    esac
  fi
}

complete -F _ckpt ckpt
