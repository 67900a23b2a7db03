"""The command-line interface: a thin Typer layer over the stage functions.

Each ``commands_*.py`` module holds the commands of one stage and registers them
on the shared app in :mod:`autounet.cli.main`.
"""
