# SPDX-License-Identifier: Apache-2.0
# bash completion for ckpt(1).
#
# cmake --install puts this file at PREFIX/share/bash-completion/completions/ckpt, where
# bash-completion loads it the first time ckpt is completed; without bash-completion, source it
# from ~/.bashrc (it needs nothing else). Checkpoints are completed by globbing the root: no
# process is started, however many checkpoints there are.

# _ckpt_unquote [-t] WORD: sets REPLY to WORD as the shell reads it: quotes and backslashes
# removed; with -t, a leading ~ or ~USER expanded too. Nothing else is expanded or run.
_ckpt_unquote() {
  local tilde=0
  [[ $1 == -t ]] && { tilde=1; shift; }
  local w=$1 out= c q= i=0 n=${#1}
  if ((tilde)) && [[ $w == '~'* ]]; then
    local user=${w%%/*} home=
    user=${user#'~'}
    if [[ -z $user ]]; then
      home=$HOME
    elif [[ $user =~ ^[A-Za-z0-9._][A-Za-z0-9._-]*$ ]]; then
      eval "home=~$user" # a user name and nothing else: only tilde expansion can happen
      [[ $home == '~'* ]] && home=
    fi
    [[ -n $home ]] && { out=$home; i=$((${#user} + 1)); }
  fi
  for ((; i < n; i++)); do
    c=${w:i:1}
    if [[ $q == "'" ]]; then
      if [[ $c == "'" ]]; then q=; else out+=$c; fi
    elif [[ $q == '"' ]]; then
      if [[ $c == '"' ]]; then
        q=
      elif [[ $c == '\' ]] && ((i + 1 < n)) && [[ ${w:i+1:1} == [\\\"\$\`] ]]; then
        out+=${w:i+1:1}
        ((i++))
      else
        out+=$c
      fi
    else
      case $c in
        \' | \") q=$c ;;
        \\) ((i + 1 < n)) && { out+=${w:i+1:1}; ((i++)); } ;;
        *) out+=$c ;;
      esac
    fi
  done
  REPLY=$out
}

# _ckpt_files -f|-d TEXT: COMPREPLY = the files (or directories) TEXT starts, inserted quoted.
_ckpt_files() {
  _ckpt_unquote "$2" # compgen expands a leading ~ itself and keeps it in what it returns
  compopt -o filenames 2>/dev/null
  mapfile -t COMPREPLY < <(compgen "$1" -- "$REPLY")
}

# _ckpt_names DIR PREFIX: appends to COMPREPLY the names of DIR's step-N directories (N: 9 digits
# or more) that start with PREFIX. One glob and builtins: no process, however many there are.
_ckpt_names() {
  local n failglob=0 nullglob=0
  local -a names
  shopt -q failglob && failglob=1
  shopt -q nullglob && nullglob=1
  shopt -u failglob
  shopt -s nullglob
  names=("$1"/step-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]*/)
  ((failglob)) && shopt -s failglob
  ((nullglob)) || shopt -u nullglob
  names=("${names[@]%/}")
  names=("${names[@]##*/}")
  for n in "${names[@]}"; do
    [[ $n == "$2"* && $n == step-* && ${n:5} != *[!0-9]* ]] && COMPREPLY+=("$n")
  done
  return 0
}

_ckpt() {
  local IFS=$' \t\n'
  local commands="save info verify load prune promote-best abort diff rm rollback copy version help"
  local global="-C --root --json -q --quiet --lock-timeout --no-fsync --threads --progress -h --help"
  # options that take a value (as the next word, or after = in the same word)
  local valued="-C|--root|--lock-timeout|--threads|--progress|--step|--from|--metric|--meta|--weights"
  valued+="|--best-key|--mode|--keep-last|--keep-best|--keep-every|--keep-within|--checksum|--shard"
  valued+="|--group|--pending-expiry|--limit|--sort|--only|--to|--key|--value"

  # The words as typed: COMP_WORDS splits --root=DIR and DEST=PATH at = and : (COMP_WORDBREAKS);
  # glue the pieces back where nothing separates them on the line.
  local -a words=()
  local i w pos=0 sep brk prevbrk=0
  for ((i = 0; i <= COMP_CWORD && i < ${#COMP_WORDS[@]}; i++)); do
    w=${COMP_WORDS[i]}
    sep=1
    if [[ -n $COMP_LINE ]]; then
      local rest=${COMP_LINE:pos}
      local trimmed=${rest#"${rest%%[![:space:]]*}"}
      ((${#trimmed} == ${#rest})) && sep=0
      pos=$((pos + ${#rest} - ${#trimmed} + ${#w}))
    fi
    brk=0
    [[ -n $w && -z ${w//[=:]/} ]] && brk=1
    if ((i > 0 && (brk || prevbrk))) && { ((!sep)) || [[ -z $COMP_LINE ]]; }; then
      words[${#words[@]} - 1]+=$w
    else
      words+=("$w")
    fi
    prevbrk=$brk
  done
  ((${#words[@]} == 0)) && return 0
  local cword=$((${#words[@]} - 1))
  local cur=${words[cword]}
  # the text readline replaces: bash passes it as $2 (without an opening quote)
  local text
  if (($# >= 2)); then
    text=$2
  else
    text=${COMP_WORDS[COMP_CWORD]}
    [[ -z ${text//[=:]/} ]] && text=
  fi

  # The command, the root, how many arguments the command has before this word, and the
  # option whose value this word is.
  local cmd= root= nargs=0 opt=
  for ((i = 1; i < cword; i++)); do
    w=${words[i]}
    case $w in
      -C | --root)
        if ((i + 1 < cword)); then root=${words[i + 1]}; else opt=$w; fi
        ((i++))
        ;;
      -C?*) root=${w#-C} ;;
      --root=*) root=${w#--root=} ;;
      -*=*) ;;
      -*)
        if [[ $w == @($valued) ]]; then
          ((i + 1 == cword)) && opt=$w
          ((i++))
        fi
        ;;
      *)
        if [[ -z $cmd ]]; then cmd=$w; else ((nargs++)); fi
        ;;
    esac
  done
  local pre=
  if [[ -z $opt && $cur == --*=* ]]; then
    opt=${cur%%=*}
    # with = in COMP_WORDBREAKS readline replaces what follows =, else the whole word
    [[ $text == --*=* ]] && { pre=${text%%=*}=; text=${text#*=}; }
  fi
  if [[ -n $root ]]; then
    _ckpt_unquote -t "$root"
    root=$REPLY
  else
    root=${CKPT_ROOT:-.}
  fi

  COMPREPLY=()
  if [[ -n $opt ]]; then
    local values=
    case $opt in
      -C | --root | --from | --to) _ckpt_files -d "$text" ;;
      --progress) values="auto always never json" ;;
      --mode) values="min max" ;;
      --checksum) values="sha256 none" ;;
      --shard) values="env" ;;
      --sort) values="step commit" ;;
    esac
    [[ -n $values ]] && COMPREPLY=($(compgen -W "$values" -- "$text"))
    if [[ -n $pre ]]; then
      for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]=$pre${COMPREPLY[i]}; done
    fi
    return 0
  fi

  local opts= args=0 # args: what the arguments are (refs, pending, files, commands) and how many
  case $cmd in
    "") opts="-V --version" args=commands:1 ;;
    save)
      opts="--step --from --metric --meta --weights --best-key --mode --keep-last --keep-best
            --keep-every --keep-within --checksum --copy --move --link --force --follow-symlinks
            --dedup --no-dedup --shard --group --pending-expiry"
      args=files:-1
      ;;
    info) opts="--path --limit --sort" args=refs:1 ;;
    verify) opts="--quick --strict --repair -v --verbose" args=refs:-1 ;;
    load) opts="--only --weights-only --to --link --dir --no-verify" args=refs:1 ;;
    prune) opts="--keep-last --keep-best --keep-every --keep-within --pending-expiry -n --dry-run" ;;
    promote-best) opts="--key --mode --value --force" args=refs:1 ;;
    abort) args=pending:1 ;;
    diff) opts="--exit-code" args=refs:2 ;;
    rm) opts="--force -n --dry-run" args=refs:-1 ;;
    rollback) opts="-n --dry-run" args=refs:1 ;;
    copy)
      opts="--step"
      # REF, then the destination root (a directory)
      if ((nargs == 0)); then args=refs:1; else args=dirs:2; fi
      ;;
    help) args=commands:1 ;;
    version) ;;
    *) return 0 ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts $global" -- "$text"))
    return 0
  fi
  local what=${args%:*} most=${args#*:}
  ((most >= 0 && nargs >= most)) && return 0
  _ckpt_unquote "$text"
  case $what in
    commands) COMPREPLY=($(compgen -W "$commands" -- "$REPLY")) ;;
    files) _ckpt_files -f "$text" ;;
    refs)
      for w in latest last best; do [[ $w == "$REPLY"* ]] && COMPREPLY+=("$w"); done
      _ckpt_names "$root" "$REPLY"
      ;;
    pending) _ckpt_names "$root/.ckpt/pending" "$REPLY" ;;
    dirs) _ckpt_files -d "$text" ;;
  esac
  return 0
}

complete -F _ckpt ckpt
