# fish completion for ckpt. Install: copy to ~/.config/fish/completions/ckpt.fish

set -l commands save info verify load prune promote-best abort diff rm rollback help version

# The root the command line names (-C/--root), else $CKPT_ROOT, else ".".
function __ckpt_root
    set -l root $CKPT_ROOT
    test -n "$root"; or set root .
    set -l tokens (commandline -opc)
    for i in (seq (count $tokens))
        if contains -- $tokens[$i] -C --root
            set -l j (math $i + 1)
            set root $tokens[$j]
        end
    end
    echo $root
end

function __ckpt_refs
    set -l root (__ckpt_root)
    printf '%s\n' latest last best
    for d in $root/step-*/
        basename $d
    end
end

function __ckpt_pending
    set -l root (__ckpt_root)
    for d in $root/.ckpt/pending/step-*/
        basename $d
    end
end

complete -c ckpt -f
complete -c ckpt -s C -l root -r -a '(__fish_complete_directories)' -d 'The checkpoint root'
complete -c ckpt -l json -d 'Machine-readable output'
complete -c ckpt -s q -l quiet -d 'Print nothing but errors'
complete -c ckpt -l lock-timeout -x -d 'Seconds to wait for the root lock'
complete -c ckpt -l no-fsync -d 'Skip fsync (unsafe)'
complete -c ckpt -l threads -x -d 'Threads that copy, hash and fsync'
complete -c ckpt -l progress -x -a 'auto always never json' -d 'Progress on stderr'
complete -c ckpt -s V -l version -d 'Print the version'

complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a save -d 'Commit files as one checkpoint'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a info -d 'List or show checkpoints'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a verify -d 'Check checkpoints and markers'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a load -d 'Print verified file paths'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a prune -d 'Apply the retention policy'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a promote-best -d 'Offer a checkpoint as best'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a abort -d 'Remove a pending sharded step'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a diff -d 'Show what differs between two checkpoints'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a rm -d 'Remove checkpoints by name'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a rollback -d 'Make a checkpoint the latest again'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a help -d 'Show help for a command'
complete -c ckpt -n "not __fish_seen_subcommand_from $commands" -a version -d 'Print the version'

complete -c ckpt -n '__fish_seen_subcommand_from save' -F
complete -c ckpt -n '__fish_seen_subcommand_from save' -l step -x -d 'The training step'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l from -r -a '(__fish_complete_directories)' -d 'Store the contents of DIR'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l metric -x -d 'KEY=VALUE metric'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l meta -x -d 'KEY=VALUE string'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l weights -x -d 'Stored path or glob of weights'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l best-key -x -d 'Metric that ranks best.json'
complete -c ckpt -n '__fish_seen_subcommand_from save promote-best' -l mode -x -a 'min max' -d 'Lower or higher is better'
complete -c ckpt -n '__fish_seen_subcommand_from save prune' -l keep-last -x -d 'Keep the N most recent'
complete -c ckpt -n '__fish_seen_subcommand_from save prune' -l keep-best -x -d 'Keep the K best'
complete -c ckpt -n '__fish_seen_subcommand_from save prune' -l keep-every -x -d 'Keep multiples of S'
complete -c ckpt -n '__fish_seen_subcommand_from save prune' -l keep-within -x -d 'Keep those within DUR'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l checksum -x -a 'sha256 none' -d 'Digest'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l copy -d 'Copy the sources'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l move -d 'Move the sources in'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l link -d 'Hard-link the sources'
complete -c ckpt -n '__fish_seen_subcommand_from save promote-best' -l force -d 'Replace or force'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l follow-symlinks -d 'Store the content behind links'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l dedup -d 'Share files unchanged since the newest checkpoint'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l no-dedup -d 'Write every file again'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l shard -x -a env -d 'Shard I/N of a sharded save, or env'
complete -c ckpt -n '__fish_seen_subcommand_from save' -l group -x -d 'Attempt group of the shards'
complete -c ckpt -n '__fish_seen_subcommand_from save prune' -l pending-expiry -x -d 'Idle time before prune removes a pending step'

complete -c ckpt -n '__fish_seen_subcommand_from info' -l path -d 'Print only the path'
complete -c ckpt -n '__fish_seen_subcommand_from info' -l limit -x -d 'Only the newest N'
complete -c ckpt -n '__fish_seen_subcommand_from info' -l sort -x -a 'step commit' -d 'Order of the table'
complete -c ckpt -n '__fish_seen_subcommand_from verify' -l quick -d 'Sizes only'
complete -c ckpt -n '__fish_seen_subcommand_from verify' -l strict -d 'Warnings fail'
complete -c ckpt -n '__fish_seen_subcommand_from verify' -l repair -d 'Rewrite the markers'
complete -c ckpt -n '__fish_seen_subcommand_from verify' -s v -l verbose -d 'One line per file'
complete -c ckpt -n '__fish_seen_subcommand_from load' -l only -x -d 'Stored paths matching GLOB'
complete -c ckpt -n '__fish_seen_subcommand_from load' -l weights-only -d 'Only the weights'
complete -c ckpt -n '__fish_seen_subcommand_from load' -l to -r -a '(__fish_complete_directories)' -d 'Materialise under DIR'
complete -c ckpt -n '__fish_seen_subcommand_from load' -l link -d 'Hard links, with --to'
complete -c ckpt -n '__fish_seen_subcommand_from load' -l dir -d 'Print the verified directory'
complete -c ckpt -n '__fish_seen_subcommand_from load' -l no-verify -d 'Sizes only'
complete -c ckpt -n '__fish_seen_subcommand_from prune' -s n -l dry-run -d 'Show the plan only'
complete -c ckpt -n '__fish_seen_subcommand_from promote-best' -l key -x -d 'The metric'
complete -c ckpt -n '__fish_seen_subcommand_from promote-best' -l value -x -d 'The value'
complete -c ckpt -n '__fish_seen_subcommand_from diff' -l exit-code -d 'Exit 1 when files differ'
complete -c ckpt -n '__fish_seen_subcommand_from rm' -l force -d 'Also what a marker names'
complete -c ckpt -n '__fish_seen_subcommand_from rm rollback' -s n -l dry-run -d 'Show only'
complete -c ckpt -n '__fish_seen_subcommand_from info verify load promote-best diff rm rollback' -a '(__ckpt_refs)'
complete -c ckpt -n '__fish_seen_subcommand_from abort' -a '(__ckpt_pending)'
complete -c ckpt -n '__fish_seen_subcommand_from help' -a "$commands"
