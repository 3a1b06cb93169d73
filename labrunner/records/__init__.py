"""The records layer: the record types a lab writes (results.py) and the folders that hold
them (run folders, sweeps, the result cache, answer files). Imports only labrunner.base."""
