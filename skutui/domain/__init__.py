"""The pure core: model, validation, TOML codec, renderers, status digest, wire types and the
error taxonomy. Touches no disk, network or process; imports no other skutui package and no
UI, SSH or netlink library."""
