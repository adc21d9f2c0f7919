"""The pure core: model, validation, store, renderers and status digest. Never imports textual."""
