"""The execution layer: running labs (in this process, in workers, as jobs on an executor)
and writing their run folder. Imports only labrunner.settings and below."""
