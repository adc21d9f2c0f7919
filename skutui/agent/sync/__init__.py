"""Configuration sync, master to backup, in real time, over the kept SSH connection.

The master watches the synced paths (inotify) and pushes only what changed; on start, when
the peer returns, after an inotify overflow and every ``RECONCILE_EVERY`` seconds it
compares both trees by content hash and fixes every difference (drift on the backup
included). The backup never pushes: every push checks this node's role first.

On the wire (the entries, manifest and request are :mod:`skutui.domain.syncplan`'s):

1. ``skutui node manifest [--exclude DIR]… ROOT…`` on the peer prints its manifest.
2. ``skutui node sync-apply``, kept running on the peer, takes a request a line: it deletes
   first, then creates directories and links and sets mode, owner and mtime of every entry;
   it refuses any path outside the backup's own synced paths or inside an excluded
   (never-synced) folder. Asked before the file writes (deletes, new directories) and after
   them (placing the staged contents, metadata).
3. File contents go to one ``skutui node sync-put`` kept running on the peer, a line each
   (skutui's key does no SFTP); it writes them, root's alone, to a hidden staged name in
   their synced folder itself (no folder below it is on the way), fsynced; the request of
   step 2 then moves them in place: the backup never sees half a file.

The backup applies all of it only inside its own synced paths, never through a symbolic
link (:mod:`.backup`).

The parts: :mod:`.tree` reads this node's files (both sides), :mod:`.master` pushes them
(``Pusher``, and ``SyncService`` that feeds it from inotify), :mod:`.transport` carries the
steps to the peer, :mod:`.backup` applies a request on the backup. ``skutui node`` imports
the backup's parts alone, so nothing here imports the others on its behalf.
"""
