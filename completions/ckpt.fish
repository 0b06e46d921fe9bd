# SPDX-License-Identifier: Apache-2.0
# fish completion for ckpt(1).
#
# cmake --install puts this file in a vendor_completions.d directory that fish reads (see
# CMakeLists.txt); or copy it to ~/.config/fish/completions/ckpt.fish. Checkpoints are
# completed by globbing the root that -C/--root names (before or after the command), else
# $CKPT_ROOT, else the current directory: no process is started, however many there are.

set -l commands save info verify load prune promote-best abort diff rm rollback copy version help

# options that take a value (as the next word, or after = in the same word)
set -g __ckpt_valued -C --root --lock-timeout --threads --progress --step --from --metric --meta \
    --weights --best-key --mode --keep-last --keep-best --keep-every --keep-within --checksum \
    --shard --group --pending-expiry --limit --sort --only --to --key --value

# Prints the command line's command (or nothing) and its root as typed (or nothing), one a line.
# A TAB asks once per condition below: the answer is kept for the line it was made for.
function __ckpt_scan
    set -l line (commandline -pc)
    if set -q __ckpt_scan_for; and test "$line" = "$__ckpt_scan_for"
        printf '%s\n' $__ckpt_scan_result
        return
    end
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmd
    set -l root
    set -l want
    for t in $tokens
        if set -q want[1]
            test $want = root; and set root $t
            set want
            continue
        end
        switch $t
            case -C --root
                set want root
            case '--root=*'
                set root (string sub -s 8 -- $t)
            case '-C?*'
                set root (string sub -s 3 -- $t)
            case '-*=*'
            case $__ckpt_valued
                set want value
            case '-*'
            case '*'
                set -q cmd[1]; or set cmd $t
        end
    end
    set -g __ckpt_scan_for "$line"
    set -g __ckpt_scan_result "$cmd" "$root"
    printf '%s\n' "$cmd" "$root"
end

# True when the line has no command yet.
function __ckpt_needs_command
    set -l scan (__ckpt_scan)
    test -z "$scan[1]"
end

# True when the line's command is one of the arguments.
function __ckpt_using
    set -l scan (__ckpt_scan)
    contains -- "$scan[1]" $argv
end

# The root: -C/--root (a leading ~ expanded), else $CKPT_ROOT, else ".".
function __ckpt_root
    set -l scan (__ckpt_scan)
    set -l root $scan[2]
    if test -z "$root"
        set root $CKPT_ROOT
        test -n "$root"; or set root .
    else if string match -q -r '^~(/|$)' -- $root
        set root $HOME(string sub -s 2 -- $root)
    end
    printf '%s\n' $root
end

# The checkpoints (step-N directories, 9 digits or more) in the root: one glob, builtins only.
function __ckpt_refs
    set -l root (__ckpt_root)
    printf '%s\n' latest last best
    set -l dirs $root/step-*/
    string match -r -- '(?<=/)step-[0-9]{9,}(?=/$)' $dirs
end

function __ckpt_pending
    set -l root (__ckpt_root)
    set -l dirs $root/.ckpt/pending/step-*/
    string match -r -- '(?<=/)step-[0-9]{9,}(?=/$)' $dirs
end

complete -c ckpt -f
complete -c ckpt -s C -l root -x -a '(__fish_complete_directories)' -d 'The checkpoint root'
complete -c ckpt -l json -d 'Machine-readable output'
complete -c ckpt -s q -l quiet -d 'Print nothing but errors'
complete -c ckpt -l lock-timeout -x -d 'Seconds to wait for the root lock'
complete -c ckpt -l no-fsync -d 'Skip fsync (unsafe)'
complete -c ckpt -l threads -x -d 'Threads that copy, hash and fsync'
complete -c ckpt -l progress -x -a 'auto always never json' -d 'Progress on stderr'
complete -c ckpt -s h -l help -d 'Show help'
complete -c ckpt -n __ckpt_needs_command -s V -l version -d 'Print the version'

complete -c ckpt -n __ckpt_needs_command -a save -d 'Commit files as one checkpoint'
complete -c ckpt -n __ckpt_needs_command -a info -d 'List or show checkpoints'
complete -c ckpt -n __ckpt_needs_command -a verify -d 'Check checkpoints and markers'
complete -c ckpt -n __ckpt_needs_command -a load -d 'Print verified file paths'
complete -c ckpt -n __ckpt_needs_command -a prune -d 'Apply the retention policy'
complete -c ckpt -n __ckpt_needs_command -a promote-best -d 'Offer a checkpoint as best'
complete -c ckpt -n __ckpt_needs_command -a abort -d 'Remove a pending sharded step'
complete -c ckpt -n __ckpt_needs_command -a diff -d 'Show what differs between two checkpoints'
complete -c ckpt -n __ckpt_needs_command -a rm -d 'Remove checkpoints by name'
complete -c ckpt -n __ckpt_needs_command -a rollback -d 'Make a checkpoint the latest again'
complete -c ckpt -n __ckpt_needs_command -a copy -d 'Commit a checkpoint again at another root'
complete -c ckpt -n __ckpt_needs_command -a version -d 'Print the version'
complete -c ckpt -n __ckpt_needs_command -a help -d 'Show help for a command'

complete -c ckpt -n '__ckpt_using save' -F
complete -c ckpt -n '__ckpt_using save' -l step -x -d 'The training step'
complete -c ckpt -n '__ckpt_using save' -l from -x -a '(__fish_complete_directories)' -d 'Store the contents of DIR'
complete -c ckpt -n '__ckpt_using save' -l metric -x -d 'KEY=VALUE metric'
complete -c ckpt -n '__ckpt_using save' -l meta -x -d 'KEY=VALUE string'
complete -c ckpt -n '__ckpt_using save' -l weights -x -d 'Stored path or glob of weights'
complete -c ckpt -n '__ckpt_using save' -l best-key -x -d 'Metric that ranks best.json'
complete -c ckpt -n '__ckpt_using save promote-best' -l mode -x -a 'min max' -d 'Lower or higher is better'
complete -c ckpt -n '__ckpt_using save prune' -l keep-last -x -d 'Keep the N most recent'
complete -c ckpt -n '__ckpt_using save prune' -l keep-best -x -d 'Keep the K best'
complete -c ckpt -n '__ckpt_using save prune' -l keep-every -x -d 'Keep multiples of S'
complete -c ckpt -n '__ckpt_using save prune' -l keep-within -x -d 'Keep those within DUR'
complete -c ckpt -n '__ckpt_using save' -l checksum -x -a 'sha256 none' -d 'Digest'
complete -c ckpt -n '__ckpt_using save' -l copy -d 'Copy the sources'
complete -c ckpt -n '__ckpt_using save' -l move -d 'Move the sources in'
complete -c ckpt -n '__ckpt_using save' -l link -d 'Hard-link the sources'
complete -c ckpt -n '__ckpt_using save promote-best' -l force -d 'Replace or force'
complete -c ckpt -n '__ckpt_using save' -l follow-symlinks -d 'Store the content behind links'
complete -c ckpt -n '__ckpt_using save' -l dedup -d 'Share files unchanged since the newest checkpoint'
complete -c ckpt -n '__ckpt_using save' -l no-dedup -d 'Write every file again'
complete -c ckpt -n '__ckpt_using save' -l shard -x -a env -d 'Shard I/N of a sharded save, or env'
complete -c ckpt -n '__ckpt_using save' -l group -x -d 'Attempt group of the shards'
complete -c ckpt -n '__ckpt_using save prune' -l pending-expiry -x -d 'Idle time before prune removes a pending step'

complete -c ckpt -n '__ckpt_using info' -l path -d 'Print only the path'
complete -c ckpt -n '__ckpt_using info' -l limit -x -d 'Only the newest N'
complete -c ckpt -n '__ckpt_using info' -l sort -x -a 'step commit' -d 'Order of the table (or a metric)'
complete -c ckpt -n '__ckpt_using verify' -l quick -d 'Sizes only'
complete -c ckpt -n '__ckpt_using verify' -l strict -d 'Warnings fail'
complete -c ckpt -n '__ckpt_using verify' -l repair -d 'Rewrite the markers'
complete -c ckpt -n '__ckpt_using verify' -s v -l verbose -d 'One line per file'
complete -c ckpt -n '__ckpt_using load' -l only -x -d 'Stored paths matching GLOB'
complete -c ckpt -n '__ckpt_using load' -l weights-only -d 'Only the weights'
complete -c ckpt -n '__ckpt_using load' -l to -x -a '(__fish_complete_directories)' -d 'Materialise under DIR'
complete -c ckpt -n '__ckpt_using load' -l link -d 'Hard links, with --to'
complete -c ckpt -n '__ckpt_using load' -l dir -d 'Print the verified directory'
complete -c ckpt -n '__ckpt_using load' -l no-verify -d 'Sizes only'
complete -c ckpt -n '__ckpt_using prune' -s n -l dry-run -d 'Show the plan only'
complete -c ckpt -n '__ckpt_using promote-best' -l key -x -d 'The metric'
complete -c ckpt -n '__ckpt_using promote-best' -l value -x -d 'The value'
complete -c ckpt -n '__ckpt_using diff' -l exit-code -d 'Exit 1 when files differ'
complete -c ckpt -n '__ckpt_using rm' -l force -d 'Also what a marker names'
complete -c ckpt -n '__ckpt_using rm rollback' -s n -l dry-run -d 'Show only'
complete -c ckpt -n '__ckpt_using copy' -l step -x -d 'The step at the destination'
complete -c ckpt -n '__ckpt_using info verify load promote-best diff rm rollback copy' -a '(__ckpt_refs)'
complete -c ckpt -n '__ckpt_using copy' -a '(__fish_complete_directories)'
complete -c ckpt -n '__ckpt_using abort' -a '(__ckpt_pending)'
complete -c ckpt -n '__ckpt_using help' -a "$commands"
