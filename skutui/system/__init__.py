"""This machine: files, daemons, netlink, inotify, the journal on disk, what a node does to itself."""
