"""The command-line subcommands beside ``run`` (report, grade, new, ...), used by
labrunner.cli. Imports labrunner.api and below."""
