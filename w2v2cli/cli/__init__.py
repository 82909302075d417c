"""Command-line layer: one short module per subcommand, each exposing `register(app)`."""
