"""The `dynembed` command line (typer): commands are registered explicitly in ``main``."""
