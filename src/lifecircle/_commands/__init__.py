"""Subcommands of the ``lifecircle`` command, one module each (see :mod:`lifecircle.cli`)."""
