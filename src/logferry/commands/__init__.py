"""What the ``logferry`` subcommands do besides running the engine: status, metrics, demo, verify,
sources and config views. ``cli`` parses arguments and calls them."""
